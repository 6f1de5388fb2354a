"""The `loopml` command line: thin front ends over the service functions."""
