"""Exceptions that map to the tool's exit codes."""


class UsageError(Exception):
    """Bad flags, files or environment values: one line on stderr, exit code 2."""
