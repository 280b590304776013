"""The worker's queues and task modules come from the installed components (entry points),
and they are the contract's: the same queue names, every task routed by its name's prefix."""

from __future__ import annotations

from celgate.settings import PARTS
from workers import components
from workers.celery_app import QUEUES, app, route_by_prefix

CONTRACT_QUEUES = {"payments", "cashback", "wallet", "workers"}


def test_the_installed_components_bring_the_contract_queues_and_task_modules() -> None:
    assert {c.name for c in components.installed()} == {"workers", "payments", "cashback"}
    assert set(QUEUES) == CONTRACT_QUEUES
    assert set(app.conf.include) >= {"workers.tasks", "payments.tasks", "cashback.tasks"}


def test_every_contract_task_is_routed_to_the_queue_its_name_starts_with() -> None:
    app.loader.import_default_modules()
    contract_tasks = {
        "workers.sweep": "workers", "payments.register": "payments",
        "payments.start_hold": "payments", "payments.capture": "payments",
        "payments.cancel": "payments", "payments.machine_timeout": "payments",
        "cashback.cashback_charge_processing": "cashback",
        "cashback.universal_cashback_processing": "cashback",
        "wallet.balance_changed": "wallet"}
    assert set(contract_tasks) <= set(app.tasks)
    for name, queue in contract_tasks.items():
        assert route_by_prefix(name, (), {}, {}) == {"queue": queue}, name


def test_log_lines_carry_the_ids_each_component_declares() -> None:
    assert set(components.log_ids()) == {"machine_id", "invoice_id", "payment_id", "order_id",
                                         "service", "yandex_uid", "wallet_id"}


def test_no_setting_is_declared_by_two_packages() -> None:
    # AllSettings composes the packages' classes: a name in two would silently take one.
    names = [name for part in PARTS for name in part.model_fields]
    assert sorted(name for name in set(names) if names.count(name) > 1) == []
