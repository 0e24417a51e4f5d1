"""Exceptions that map to the tool's exit codes."""

# Line breaks a terminal honours, written as escapes: a usage error is one line.
_BREAKS = str.maketrans({"\n": "\\n", "\r": "\\r", "\v": "\\v", "\f": "\\f"})


class UsageError(Exception):
    """Bad flags, files or environment values: one line on stderr, exit code 2."""

    def __str__(self) -> str:
        # One line whatever it quotes: argparse puts the user's raw arguments in its messages
        # ("unrecognized arguments: ..."), and an argument may hold a newline.
        return super().__str__().translate(_BREAKS)


class OutputError(Exception):
    """A report file could not be written (disk full, read-only, over quota): one line on stderr,
    exit code 3 on every rank. The run's verdict was not delivered, so a gate must not act on
    it as a pass (0) or as a list of hosts to drain (1): 3 says "no verdict, run it again"."""


# What a saved report.json of the right keys but a part of the wrong shape (a hand edit, bit rot,
# a truncated copy re-closed by a tool) raises while it is compared or drawn: the commands that
# read one turn these into a UsageError naming the file, never a traceback.
SHAPE_ERRORS = (AttributeError, KeyError, IndexError, TypeError, ValueError)
