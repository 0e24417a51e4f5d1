"""Exceptions that map to the tool's exit codes."""


class UsageError(Exception):
    """Bad flags, files or environment values: one line on stderr, exit code 2."""


class OutputError(Exception):
    """A report file could not be written (disk full, read-only, over quota): one line on stderr,
    exit code 3 on every rank. The run's verdict was not delivered, so a gate must not act on
    it as a pass (0) or as a list of hosts to drain (1): 3 says "no verdict, run it again"."""
