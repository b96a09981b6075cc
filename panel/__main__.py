"""`python -m panel`: the same command as the installed `panel` script."""

from panel.cli import main

main()
