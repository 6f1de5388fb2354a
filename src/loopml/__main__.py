"""`python -m loopml` runs the command line."""

from loopml.cli.app import main

main()
