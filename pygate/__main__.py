"""``python -m pygate`` runs the CLI."""

from pygate._cli import main

main()
