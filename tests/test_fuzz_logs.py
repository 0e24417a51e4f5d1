"""Property tests (hypothesis) for the log readers: the NCCL INFO log parser and `explain`'s
reading (reader, attribution, events, engine) never raise, whatever the lines hold.

Inputs are real lines (tests/fixtures/nccl/, the explain excerpts) mutated the ways logs get
mangled: cut at any byte, bytes flipped or inserted, lines spliced, numbers replaced by huge or
non-ASCII digit runs, NUL and non-UTF-8 bytes; and plain random bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

from helpers.explain_excerpts import EXCERPTS, HEALTHY
from hypothesis import example, given
from hypothesis import strategies as st

from nccldoctor.explain.reader import Source
from nccldoctor.explain.report import explain_sources
from nccldoctor.nccl_log import merge_summaries, parse_nccl_log

NCCL_LINES = [
    line
    for path in sorted((Path(__file__).parent / "fixtures" / "nccl").glob("*.log"))
    for line in path.read_text().splitlines()
    if " NCCL " in line
]
EXCERPT_LINES = [line for text, *_ in EXCERPTS.values() for line in text.splitlines()] + HEALTHY.splitlines()
NUMBER = re.compile(r"[0-9]+")
DIGIT_RUNS = st.sampled_from(
    ["9" * 5000, "0" * 30, "\u0663\u0663", "\uff11", "-1", "", "99999999999999999999"]
)


@st.composite
def mangled(draw, lines: list[str]) -> bytes:
    """A few real lines, each perhaps mangled, joined; or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=2000))
    out = []
    for line in draw(st.lists(st.sampled_from(lines), min_size=1, max_size=8)):
        how = draw(st.integers(0, 5))
        if how == 1:  # a number replaced by a huge, padded or non-ASCII digit run
            spans = [m.span() for m in NUMBER.finditer(line)]
            if spans:
                start, end = draw(st.sampled_from(spans))
                line = line[:start] + draw(DIGIT_RUNS) + line[end:]
        raw = line.encode()
        if how == 2:  # cut anywhere, even inside a UTF-8 sequence
            raw = raw[: draw(st.integers(0, len(raw)))]
        elif how == 3 and raw:  # one byte changed
            at = draw(st.integers(0, len(raw) - 1))
            raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
        elif how == 4:  # junk inserted
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + draw(st.binary(max_size=20)) + raw[at:]
        elif how == 5 and out:  # spliced onto the line before (a lost newline)
            out[-1] += raw
            continue
        out.append(raw)
    return b"\n".join(out)


@given(mangled(NCCL_LINES))
@example(b"h:1:1 [0] NCCL INFO NCCL_SOCKET_IFNAME set by environment to \xff\xfe")
def test_nccl_log_parser_never_raises(data):
    text = data.decode("utf-8", "replace")
    summary = parse_nccl_log(text)
    assert summary.transport is None or summary.transport in summary.transports
    merged = merge_summaries([summary, parse_nccl_log(text[: len(text) // 2])])
    assert merged.to_json() is not None


@given(mangled(EXCERPT_LINES + NCCL_LINES))
@example(b"[rank" + b"9" * 5000 + b"]: torch.OutOfMemoryError: CUDA out of memory.")
@example(b"[PG 0 Rank " + b"9" * 5000 + b"] Watchdog caught collective operation timeout")
def test_explain_never_raises_and_reports_exit_code(data):
    report = explain_sources([Source("fuzz.log", data=data)])
    assert report.exit_code in (0, 1, 3)
    logs = report.sections["logs"]
    assert logs["bytes"] == len(data)
    assert all(isinstance(rank, int) and rank >= 0 for rank in logs["ranks_seen"])
