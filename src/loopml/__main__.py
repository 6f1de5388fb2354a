"""`python -m loopml` runs the command line."""

from loopml.cli.main import main

main()
