"""The payment capture chain: a hellgate-style payment machine on the `workers` runtime.

A payment is a machine in the `payments` namespace (`processor`) whose history is a list of
versioned changes (`events`); its state is folded from them (`state`). Each timer runs the step
of the current activity (`steps`, calling the `peers`); commands decide against the state
(`decisions`). Commands enter through `commands` from the HTTP API (`api`, bodies in `schemas`,
answers in `views`) and from Celery tasks (`tasks`). Money and cash flows: `money`, `cashflow`.
"""
