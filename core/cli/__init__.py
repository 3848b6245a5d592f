"""The command line (``python -m core``): ``commands`` builds the parser and dispatches to the sub-command modules."""
