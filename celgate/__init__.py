"""Composition root: the HTTP API and the operator CLI put the business packages together."""
