"""Property tests (hypothesis) for the bench's flag values: sizes, sweep specs, --expect-busbw,
--ports, --ifaces and the whole parser on random argv built from the real flag names.

The contract under test: bad input is a UsageError (one line, exit 2), never another exception;
good input keeps its documented meaning. Each @example is a falsifying input hypothesis found,
kept as a regression after the fix.
"""

from __future__ import annotations

import argparse
import math

from helpers.fuzz import hostile_text, usage_error_or
from hypothesis import example, given
from hypothesis import strategies as st

from nccldoctor import cli
from nccldoctor.commands import preflight
from nccldoctor.config import (
    ALL_PROBES,
    build_parser,
    parse_args,
    parse_expect_busbw,
    parse_ifaces,
    parse_ports,
)
from nccldoctor.errors import UsageError
from nccldoctor.sweepspec import check_combos, check_unique, combinations, parse_item
from nccldoctor.units import format_size, parse_size

# -- sizes (-b/-e, --expect's "at" keys) ------------------------------------------------------

SUFFIX_BYTES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
LARGEST = 2**63 - 1  # a size is a torch numel in bytes: int64


@given(st.integers(min_value=0, max_value=LARGEST))
def test_format_size_reads_back_as_the_same_size(n):
    assert parse_size(format_size(n)) == n


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(sorted(SUFFIX_BYTES)),
    st.sampled_from(["", "B", "iB", "ib", "IB"]),
    st.booleans(),
    st.sampled_from(["", " ", "  "]),
)
def test_a_written_size_means_number_times_its_unit(number, suffix, unit, lower, space):
    text = (
        f"{space}{number}{space}{suffix.lower() if lower else suffix}{unit if suffix or unit != 'iB' else ''}"
    )
    assert parse_size(text) == number * SUFFIX_BYTES[suffix]


@given(hostile_text())
@example("1\u212a")  # KELVIN SIGN matched [KMGT] under IGNORECASE, then KeyError: 'K'
@example("1K\u0130B")  # a dotted capital I matched "I" of "KiB" under IGNORECASE
@example("9" * 5000)  # int() refuses more than 4300 digits: ValueError, not a usage error
@example("99999999T")  # 2**66 bytes: no buffer is that large
def test_parse_size_raises_only_usage_error(text):
    size = usage_error_or(parse_size, text)
    if size is not None:
        assert 0 <= size <= LARGEST
        assert text.strip()[0] in "0123456789"  # ASCII digits only


# -- sweep specs ------------------------------------------------------------------------------

NAMES = st.sampled_from(["NCCL_ALGO", "NCCL_PROTO", "NCCL_ALGOO", "NCCL_DEBUG", "OMP_NUM_THREADS", "X"])
VALUES = st.lists(st.text(alphabet="abcR,|= 1", max_size=6), max_size=4)


@given(st.one_of(hostile_text(), st.builds(lambda n, v: f"{n}={','.join(v)}", NAMES, VALUES)))
@example("NCCL_ALGO=Ring|Tree,LL")  # `|` splits; the comma stays inside a value
def test_parse_item_raises_only_usage_error_and_keeps_values(item):
    parsed = usage_error_or(parse_item, item)
    if parsed is None:
        return
    name, values = parsed
    assert name == item.partition("=")[0].strip() and values
    assert all(v and v == v.strip() for v in values) and len(set(values)) == len(values)
    text = item.partition("=")[2]
    assert values == [v.strip() for v in text.split("|" if "|" in text else ",")]


SPEC = st.lists(
    st.tuples(NAMES, st.lists(st.text(alphabet="abc", min_size=1, max_size=3), min_size=1, max_size=4)),
    max_size=4,
)


@given(SPEC, st.integers(min_value=-2, max_value=300))
def test_combinations_are_the_product_in_order_and_counted_before(spec, max_combos):
    usage_error_or(check_unique, spec)
    count = math.prod(len(values) for _, values in spec)
    refused = usage_error_or(lambda: check_combos(spec, max_combos) or "ok") is None
    assert refused == (count > max_combos)
    combos = combinations(spec)
    assert len(combos) == count
    if spec and len({name for name, _ in spec}) == len(spec):
        assert combos[0] == {name: values[0] for name, values in spec}  # the first varies slowest
        assert combos[-1] == {name: values[-1] for name, values in spec}


# -- --expect-busbw, --ports, --ifaces --------------------------------------------------------


@given(
    st.one_of(
        hostile_text(),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.lists(
            st.tuples(st.sampled_from([*ALL_PROBES, "nope", ""]), st.floats().map(repr)), min_size=1
        ).map(lambda items: ",".join(f"{p}={v}" for p, v in items)),
    )
)
@example("nan")  # NaN is not "positive", but `nan <= 0` is False: it was accepted
@example("all_reduce=inf")  # an infinite bar no run can meet
def test_expect_busbw_raises_only_usage_error_and_is_positive(text):
    expected = usage_error_or(parse_expect_busbw, text)
    if expected is None:
        return
    assert expected and set(expected) <= set(ALL_PROBES)
    assert all(math.isfinite(v) and v > 0 for v in expected.values())


PORT_ITEM = st.one_of(
    st.integers(min_value=-5, max_value=70000).map(str),
    st.tuples(st.integers(-5, 70000), st.integers(-5, 70000)).map(lambda p: f"{p[0]}-{p[1]}"),
    hostile_text(max_size=8),
)


@given(st.one_of(hostile_text(), st.lists(PORT_ITEM, min_size=1, max_size=5).map(",".join)))
@example("\u00b2")  # SUPERSCRIPT TWO: str.isdigit() is True, int() raises ValueError
@example("1-\u00b2")
@example("\u0663")  # ARABIC-INDIC THREE: isdigit() and int() agree, but it is no port to type
def test_ports_are_ordered_ranges_within_1_65535(text):
    ranges = usage_error_or(parse_ports, text)
    if ranges is None:
        return
    assert len(ranges) == len(text.split(","))
    for first, last in ranges:
        assert 1 <= first <= last <= 65535


@given(
    st.one_of(
        hostile_text(),
        st.lists(st.from_regex(r"[a-z]{1,4}[0-9]{0,2}(:[0-9])?", fullmatch=True), max_size=4).map(",".join),
    )
)
def test_ifaces_is_auto_off_or_unique_names(text):
    ifaces = usage_error_or(parse_ifaces, text)
    if ifaces is None or ifaces in ("auto", "off"):
        return
    assert ifaces and len(set(ifaces)) == len(ifaces)
    assert all(name and "," not in name and name == name.strip() for name in ifaces)


# -- the whole bench parser -------------------------------------------------------------------


def _flags() -> list[tuple[str, bool]]:
    """(flag, takes a value) for every declared bench flag except -h."""
    found = []
    for action in build_parser()._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        takes_value = action.nargs != 0
        found += [(name, takes_value) for name in action.option_strings]
    return found


FLAGS = _flags()
PLAUSIBLE = st.sampled_from(
    [
        *("0", "1", "2", "-1", "8", "64K", "1M", "8M", "1G", "nan", "inf", "-inf", "1e400", "0.5", "on"),
        *("off", "auto", "gloo", "nccl", "float32", "bf16", "int8", "avg", "sum", "all_reduce"),
        *("all_reduce,sendrecv", "all_reduce=20", "20", "40000-40100,29400", "eth0,ib0", "mlx5_0:1"),
        *("NCCL_ALGO=Ring,Tree", "NCCL_PROTO=LL|Simple", "tiny", "gpt2-125m", "/tmp/x", "", " ", "50%"),
    ]
)


@st.composite
def argv(draw) -> list[str]:
    args = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        flag, takes_value = draw(st.sampled_from(FLAGS))
        args.append(flag)
        if takes_value:
            args.append(draw(st.one_of(PLAUSIBLE, hostile_text(max_size=12))))
    if draw(st.booleans()):
        args.append(draw(hostile_text(max_size=12)))  # a stray positional or a misspelt flag
    return args


@given(argv())
@example(["--timeout", "inf"])  # datetime.timedelta(seconds=inf): OverflowError at the store
@example(["--timeout", "1e300"])  # beyond what a thread can wait: OverflowError later
@example(["--ddp-bucket-mb", "inf"])  # DDP does int(bucket_cap_mb * 2**20): OverflowError
@example(["-e", "9" * 5000])
@example(["\n0"])  # argparse quotes a stray argument raw: "unrecognized arguments: \n0" was two lines
def test_bench_parser_raises_only_usage_error(args):
    config = usage_error_or(parse_args, args)
    if config is None:
        return
    assert math.isfinite(config.run.timeout) and config.run.timeout > 0
    assert math.isfinite(config.ddp.bucket_mb) and config.ddp.bucket_mb > 0
    assert 1 <= config.collectives.min_bytes <= config.collectives.max_bytes <= LARGEST
    sizes = config.collectives.sizes()
    assert sizes[0] == config.collectives.min_bytes and sizes == sorted(set(sizes))


def test_usage_error_helper_fails_on_other_exceptions():
    """usage_error_or must not swallow what the properties exist to catch."""

    def boom(_text: str) -> None:
        raise KeyError("K")

    try:
        usage_error_or(boom, "x")
    except KeyError:
        return
    raise AssertionError("a KeyError passed as a usage error")


def test_usage_error_helper_returns_none_on_usage_error():
    def refuse(_text: str) -> None:
        raise UsageError("no")

    assert usage_error_or(refuse, "x") is None


# -- the nccldoctor command line (show, explain, codes, preflight, run, bench) ----------------


HELP_FLAGS = ("-h", "--help", "--version")


def _command_flags() -> dict[str, list[tuple[str, bool]]]:
    """Per subcommand, (flag, takes a value) for its declared flags except -h."""

    commands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: [
            (flag, action.nargs != 0)
            for action in parser._actions
            for flag in action.option_strings
            if flag not in HELP_FLAGS  # they print and exit 0, as asked
        ]
        for name, parser in commands.choices.items()
    }


COMMAND_FLAGS = _command_flags()


@st.composite
def command_argv(draw) -> list[str]:
    command = draw(st.sampled_from([*sorted(COMMAND_FLAGS), "nope", ""]))
    args = [command]
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        flag, takes_value = draw(st.sampled_from(COMMAND_FLAGS.get(command) or FLAGS))
        args.append(flag)
        if takes_value:
            args.append(draw(st.one_of(PLAUSIBLE, hostile_text(max_size=12))))
    if draw(st.booleans()):
        args.append(draw(st.one_of(PLAUSIBLE, hostile_text(max_size=12))))
    return args


def parse_command(args: list[str]) -> object:
    """cli.parse_args, then what the command checks before it does anything (preflight's config)."""
    parsed = cli.parse_args(args)
    return preflight.config_of(parsed) if parsed.command == "preflight" else parsed


@given(command_argv())
@example(["preflight", "--master-addr", "h", "--master-port", "99999"])
@example(["preflight", "--master-addr", "h", "--master-port", "1", "--timeout", "nan"])
@example(["show", "a", "\nb"])  # a stray argument with a newline: still one line
def test_nccldoctor_command_line_raises_only_usage_error(args):
    usage_error_or(parse_command, args)
