"""Thin clients of the peers we do not own, and sandbox servers that behave like them.

This package imports neither `workers` nor the business packages: clients take their URLs and
timeouts as arguments.
"""
