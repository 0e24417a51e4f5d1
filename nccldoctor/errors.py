"""Exceptions that map to the tool's exit codes."""

# Line breaks a terminal honours, written as escapes: a usage error is one line.
_BREAKS = str.maketrans({"\n": "\\n", "\r": "\\r", "\v": "\\v", "\f": "\\f"})


class UsageError(Exception):
    """Bad flags, files or environment values: one line on stderr, exit code 2."""

    def __str__(self) -> str:
        # One line whatever it quotes: argparse puts the user's raw arguments in its messages
        # ("unrecognized arguments: ..."), and an argument may hold a newline.
        return super().__str__().translate(_BREAKS)
