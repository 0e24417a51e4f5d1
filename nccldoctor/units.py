"""Human sizes, two ways, both in powers of 1024.

format_size writes a size as the -b/-e flags and nccl-tests' size column do (8, 64K, 1M: exact,
so a reader can paste it back); format_bytes writes an amount of bytes in prose (512 B, 64 KiB,
1.79 MiB). Every printed byte count goes through one of them; report.json keeps raw numbers.
"""

import math
import re

from nccldoctor.errors import UsageError

_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# ASCII only: under IGNORECASE alone, \d takes any script's digits and [KMGT] the KELVIN SIGN.
_SIZE = re.compile(r"^\s*([0-9]+)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE | re.ASCII)
LARGEST = 2**63 - 1  # bytes: a buffer's size is an int64 in torch


def parse_size(text: str, what: str = "size") -> int:
    """'64K' -> 65536. Raises UsageError naming `what` and the bad value."""
    match = _SIZE.match(str(text))
    if not match:
        raise UsageError(f"{what}: {text!r} is not a size (use e.g. 8, 64K, 1M, 1G)")
    digits = match.group(1).lstrip("0") or "0"
    # Checked before int(): Python refuses to convert more than 4300 digits (ValueError).
    size = int(digits) * _SUFFIXES[match.group(2).upper()] if len(digits) <= 19 else LARGEST + 1
    if size > LARGEST:
        raise UsageError(f"{what}: {text!r} is larger than any buffer (at most {format_size(LARGEST)})")
    return size


def format_size(num_bytes: int) -> str:
    """65536 -> '64K'; sizes that are not a whole multiple keep the smaller unit."""
    for suffix in ("T", "G", "M", "K"):
        unit = _SUFFIXES[suffix]
        if num_bytes >= unit and num_bytes % unit == 0:
            return f"{num_bytes // unit}{suffix}"
    return str(num_bytes)


def format_bytes(num_bytes: float) -> str:
    """1882112 -> '1.79 MiB', 65536 -> '64 KiB', 8 -> '8 B': three significant digits in the
    largest unit the amount reaches, for prose and table cells."""
    for suffix in ("T", "G", "M", "K"):
        unit = _SUFFIXES[suffix]
        if num_bytes >= unit:
            return f"{three_digits(num_bytes / unit)} {suffix}iB"
    return f"{num_bytes:.0f} B"


def three_digits(value: float) -> str:
    """1.7949 -> '1.79', 64.0 -> '64', 1023.9 -> '1024': three significant digits, no exponent,
    no trailing zeros (a whole number keeps all of its digits)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
