"""``python -m greensed.cli ...``: the same as the ``greensed`` command."""

from greensed.cli import main

main()
