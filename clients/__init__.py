"""Thin clients of the peers we do not own (the sandbox package serves doubles of them), and the
IDL subset they speak.

This package imports neither `workers` nor the business packages: clients take their URLs and
timeouts as arguments; `settings.py` reads them from the environment for the packages that
build clients, and `metrics.py` times every call.
"""
