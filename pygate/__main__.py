"""``python -m pygate`` runs the CLI."""

from pygate.cli._main import main

main()
