"""The bottom layer: the error taxonomy, the retry policy and the currency table.

Every other package (`clients`, `workers`, `payments`, `cashback`, `celgate`) may import it;
it imports none of them and nothing heavier than the standard library, so a client can use
it without building the Celery app that `workers` builds on import.
"""
