"""Strategies and checks the property tests (tests/test_fuzz_*.py) share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import strategies as st

from nccldoctor.errors import UsageError

T = TypeVar("T")

# Characters that have broken parsers before, or could: Unicode digits that str.isdigit() or
# \d accept (superscripts, Arabic-Indic, fullwidth), letters that case-fold onto ASCII ones
# (KELVIN SIGN, dotted I, long s), separators, quotes, NUL, BOM, surrogates' replacement.
TRICKY = "0123456789KMGTkmgtiIbB,-=^:|.% \t\n\r\x00\ufeff\u00b2\u0663\uff11\u212a\u0130\u017f\u00a0'\"[]{}#\\"


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Any Unicode, tricky ASCII and look-alikes, and long digit runs (int() caps at 4300)."""
    return st.one_of(
        st.text(max_size=max_size),
        st.text(alphabet=TRICKY, max_size=max_size),
        st.integers(min_value=0).map(str),
        st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n),
    )


def usage_error_or(function: Callable[..., T], *args: Any) -> T | None:
    """function(*args), or None when it refused the input the documented way: UsageError, or
    argparse.ArgumentTypeError from an argparse type (the parser turns it into a UsageError).
    Any other exception propagates: that is the bug the property exists to find."""
    try:
        return function(*args)
    except (UsageError, argparse.ArgumentTypeError) as exc:
        message = str(exc)
        assert message and "\n" not in message.strip(), f"not one line: {message!r}"
        return None
