"""Human sizes as nccl-tests writes them: 8, 64K, 1M, 1G (powers of 1024)."""

import re

from nccldoctor.errors import UsageError

_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str, what: str = "size") -> int:
    """'64K' -> 65536. Raises UsageError naming `what` and the bad value."""
    match = _SIZE.match(str(text))
    if not match:
        raise UsageError(f"{what}: {text!r} is not a size (use e.g. 8, 64K, 1M, 1G)")
    return int(match.group(1)) * _SUFFIXES[match.group(2).upper()]


def format_size(num_bytes: int) -> str:
    """65536 -> '64K'; sizes that are not a whole multiple keep the smaller unit."""
    for suffix in ("T", "G", "M", "K"):
        unit = _SUFFIXES[suffix]
        if num_bytes >= unit and num_bytes % unit == 0:
            return f"{num_bytes // unit}{suffix}"
    return str(num_bytes)
