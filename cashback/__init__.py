"""Cashback charged through the billing `transactions` service.

`register` records an order's target cashback (`order_clears`) and queues its charge;
`charge_job` brings the invoice to that target (`charge` decides each step); `universal`
computes the target from the invoice and `order_rates`; `balance` takes the billing balance
callback. `api` and `tasks` are the HTTP routes and the Celery tasks.
"""
