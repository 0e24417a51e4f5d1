"""Result rows for tests that judge or render rows without measuring them."""

from nccldoctor.rows import Row


def make_row(**fields) -> Row:
    """A plausible checked all_reduce row (4 ranks, 1 KiB in-place); `fields` override any field."""
    defaults = {
        "probe": "all_reduce",
        "size_bytes": 1024,
        "count": 256,
        "dtype": "float32",
        "op": "sum",
        "root": -1,
        "inplace": True,
        "time_us": 100.0,
        "algbw_gbps": 0.01024,
        "busbw_gbps": 0.01536,
        "wrong": 0,
        "min_time_us": 90.0,
        "max_time_us": 120.0,
        "slowest_rank": 1,
        "wrong_ranks": [],
        "wrong_sources": [],
        "iters": 5,
        "world_size": 4,
    }
    return Row(**(defaults | fields))
