"""``python -m minisbert`` is the ``minisbert`` command."""

from minisbert.cli import main

main()
