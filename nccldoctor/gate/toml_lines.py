"""Which line of a TOML file each key is on: tomllib gives values, never positions.

A bad value or an unknown key must be reported as `FILE:LINE key`, so this walks the text
once the way a TOML parser does (tables, dotted and quoted keys, strings of all four kinds,
multi-line arrays, inline tables) and records where every key path starts. It runs only on
text tomllib has already accepted, so it need not reject anything; where it cannot place a
key (it never should), `line_of` falls back to the line of the nearest enclosing table.
"""

from __future__ import annotations

import contextlib
import re

KeyPath = tuple[str, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}

    @property
    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def skip_blank(self, newlines: bool) -> None:
        """Spaces, tabs, comments, and (where the grammar allows) newlines."""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self.pos += 1
            elif char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def record(self, path: KeyPath, line: int) -> None:
        for depth in range(1, len(path) + 1):  # a.b.c = 1 also defines a and a.b here
            self.lines.setdefault(path[:depth], line)

    # -- keys -----------------------------------------------------------------------------------
    def key(self) -> KeyPath:
        parts = [self.simple_key()]
        while True:
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return tuple(parts)
            self.pos += 1
            self.skip_blank(newlines=False)
            parts.append(self.simple_key())

    def simple_key(self) -> str:
        if self.peek() in ('"', "'"):
            return self.string()
        match = _BARE.match(self.text, self.pos)
        if not match:
            raise ValueError(f"no key at line {self.line}")
        self.pos = match.end()
        return match.group()

    # -- values ---------------------------------------------------------------------------------
    def string(self) -> str:
        quote = self.peek()
        multi = self.peek(3) == quote * 3
        delim = quote * 3 if multi else quote
        self.pos += len(delim)
        start = self.pos
        while True:
            if quote == '"' and self.text[self.pos] == "\\":
                self.pos += 2
                continue
            if self.text.startswith(delim, self.pos):
                while multi and self.text.startswith(delim + quote, self.pos):  # """a"""" ends late
                    self.pos += 1
                raw = self.text[start : self.pos]
                self.pos += len(delim)
                return _unescape(raw) if quote == '"' else raw
            self.pos += 1

    def value(self, path: KeyPath) -> None:
        char = self.peek()
        if char in ('"', "'"):
            self.string()
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        else:  # a number, a date, true/false: up to a separator
            match = re.compile(r"[^,\]}\n#]*").match(self.text, self.pos)
            self.pos = match.end()

    def array(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            self.skip_blank(newlines=True)
            if self.peek() == "]":
                self.pos += 1
                return
            self.value(path)
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.pos += 1

    def inline_table(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            self.skip_blank(newlines=False)
            if self.peek() == "}":
                self.pos += 1
                return
            self.key_value(path)
            self.skip_blank(newlines=False)
            if self.peek() == ",":
                self.pos += 1

    def key_value(self, table: KeyPath) -> None:
        line = self.line
        path = table + self.key()
        self.record(path, line)
        self.skip_blank(newlines=False)
        self.pos += 1  # "="
        self.skip_blank(newlines=False)
        self.value(path)

    # -- the document ---------------------------------------------------------------------------
    def document(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return self.lines
            if self.peek() == "[":
                table = self.header()
            else:
                self.key_value(table)

    def header(self) -> KeyPath:
        line = self.line
        double = self.peek(2) == "[["
        self.pos += 2 if double else 1
        self.skip_blank(newlines=False)
        path = self.key()
        self.skip_blank(newlines=False)
        self.pos += 2 if double else 1
        self.record(path, line)
        return path


def _unescape(raw: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "uU":
            return chr(int(code[1:], 16))
        if code[0] in " \t\n\r":  # a line-ending backslash in a multi-line string
            return ""
        return _SIMPLE_ESCAPES.get(code, code)

    return _ESCAPE.sub(one, raw)


def key_lines(text: str) -> dict[KeyPath, int]:
    """Every key path (tables, dotted keys, inline tables' keys) -> the 1-based line it starts on.
    Array-of-tables entries all map to the first one's line."""
    scanner = _Scanner(text)
    with contextlib.suppress(ValueError, IndexError):  # text tomllib rejected: what was placed so far
        scanner.document()
    return scanner.lines


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    """The line of `path`, or of its nearest enclosing key that has one (1 when none has)."""
    for depth in range(len(path), 0, -1):
        if path[:depth] in lines:
            return lines[path[:depth]]
    return 1
