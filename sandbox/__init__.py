"""Sandbox servers that behave like the peers (for the demo and the tests).

Each peer is a Starlette app with its protocol routes plus a control API under `/_sandbox/`
(state inspection, reset, fault injection). `celgate-sandbox` runs them all.
"""
