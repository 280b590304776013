"""`python -m celgate.cli`: the same as the `celgate` command."""

from celgate.cli import main

main()
