"""Thin clients of the peers we do not own (the sandbox package serves doubles of them).

This package imports no business package and, of the runtime, only its metrics: clients take
their URLs and timeouts as arguments.
"""
