"""``python -m ctkd_inspect`` runs the ``ctkd-inspect`` command."""

from .cli import main

main()
