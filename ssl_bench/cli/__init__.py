"""The ``ssl-bench`` command line: argument parsing and one module per command group."""
