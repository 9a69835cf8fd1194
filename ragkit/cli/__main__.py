"""`python -m ragkit.cli`: the same as the `ragkit` command."""

from . import main

main()
