"""Sandbox servers that behave like the peers, and the development tooling around them.

Each peer is a Starlette app with its protocol routes plus a control API under `/_sandbox/`
(state inspection, reset, fault injection). `celgate-sandbox` runs them all. Tests, the demo
and the benchmarks drive them with `control_client`, point settings at them with
`peers.peer_env` and run them (and workers, beat) with `processes`. Nothing in the service
imports this package.
"""
