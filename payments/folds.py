"""The payment state of a stored history, folded once per event in each worker process.

A step used to read every stored change again (schema validation included) and fold the whole
history, a cost that grew with each step. A process now keeps, for the machines it ran lately,
the state it folded and the exact event bodies it was folded from. The next read compares the
stored bodies with those (a plain equality of JSON values, far cheaper than validating them) and
folds only the events after them; a history that differs in any stored body, or is shorter
(a commit that never happened, a rewritten row), is folded from the start again. So the state
is always the fold of the history as stored now, each event validated and applied in order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from payments.events import from_json
from payments.state import PaymentState, fold
from workers.machine_model import Json, Machine

_Key = tuple[str, str]


class FoldCache:
    """The last folded state of up to `size` machines, least recently used dropped first."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[_Key, tuple[tuple[Json, ...], PaymentState]] = OrderedDict()

    def state_of(self, machine: Machine) -> PaymentState:
        bodies = tuple(event.body for event in machine.history)
        key = (machine.namespace, machine.id)
        state, known = PaymentState(), 0
        entry = self._entries.get(key)
        if entry is not None:
            folded, folded_state = entry
            if len(folded) <= len(bodies) and bodies[:len(folded)] == folded:
                state, known = folded_state, len(folded)
        state = fold((from_json(body) for body in bodies[known:]), state)
        self._remember(key, bodies, state)
        return state

    def appended(self, machine: Machine, bodies: Sequence[Json], state: PaymentState) -> None:
        """The machine's history will end with `bodies` if the step commits; `state` is the
        fold of it all. A step that does not commit leaves a stored history that does not
        start with these bodies, and the next read folds it from the start."""
        history = tuple(event.body for event in machine.history)
        self._remember((machine.namespace, machine.id), history + tuple(bodies), state)

    def _remember(self, key: _Key, bodies: tuple[Json, ...], state: PaymentState) -> None:
        self._entries[key] = (bodies, state)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

