"""Property tests (hypothesis) for the files nccldoctor reads back: report.json (`nccldoctor show`)
and the `--expect` TOML file.

`show` on a truncated or corrupted report.json exits 2 with one line on stderr and no
traceback; a file the mutation left readable renders and exits with the report's own code
(0, 1 or 3). The mutations: cut at any byte, bytes flipped, a key dropped, a value replaced by
one of another type, random JSON, random bytes. `--expect` on any text or bytes is a UsageError.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path

from helpers.fuzz import hostile_text, usage_error_or
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nccldoctor.cli import parse_args
from nccldoctor.commands import load
from nccldoctor.errors import UsageError
from nccldoctor.gate.expectations import load as load_expectations
from nccldoctor.gate.expectations import parse as parse_expectations

REPORT = Path(__file__).parent / "fixtures" / "reports" / "single_node.json"
REPORT_BYTES = REPORT.read_bytes()
REPORT_DATA = json.loads(REPORT_BYTES)
SCRATCH = Path(tempfile.mkdtemp(prefix="nccldoctor-fuzz-"))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(data, prefix=()):
    """Every key path in a JSON document (dict keys and list indexes)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


PATHS = [p for p in _paths(REPORT_DATA) if len(p) <= 4]


@st.composite
def corrupted_report(draw) -> bytes:
    how = draw(st.sampled_from(["truncate", "flip", "drop", "retype", "json", "bytes"]))
    if how == "truncate":
        return REPORT_BYTES[: draw(st.integers(0, len(REPORT_BYTES) - 1))]
    if how == "flip":
        data = bytearray(REPORT_BYTES)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "json":
        return json.dumps(draw(JSON)).encode()
    if how == "bytes":
        return draw(st.binary(max_size=200))
    data = copy.deepcopy(REPORT_DATA)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            if how == "drop":
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(JSON)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed or retyped the way there
    return json.dumps(data).encode()


def show(data: bytes, capsys, *flags: str) -> tuple[int, str, str]:
    """`nccldoctor show` as cli.main runs it, in this process: a UsageError is one line and exit
    2; any other exception propagates and fails the test (main would print a traceback)."""
    path = SCRATCH / "report.json"
    path.write_bytes(data)
    args = parse_args(["show", str(path), *flags])
    try:
        code = load("show").run(args)
    except UsageError as exc:
        print(f"nccldoctor: error: {exc}", file=sys.stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=corrupted_report(), flags=st.sampled_from([(), ("--quiet",), ("--exclude",)]))
@example(data=REPORT_BYTES[:100], flags=())
@example(data=json.dumps({**REPORT_DATA, "job": []}).encode(), flags=())
@example(data=json.dumps({**REPORT_DATA, "findings": [{"code": 1}]}).encode(), flags=())
@example(data=json.dumps({**REPORT_DATA, "results": [None]}).encode(), flags=())  # AttributeError
def test_show_on_a_corrupted_report_is_one_line_and_exit_2_or_the_report(data, flags, capsys):
    code, out, err = show(data, capsys, *flags)
    assert "Traceback" not in out + err
    if code == 2:
        assert out == "" and err.count("\n") == 1 and err.startswith("nccldoctor: error: show: ")
    else:
        assert code in ((0,) if "--exclude" in flags else (0, 1, 3)) and err == ""


def test_show_on_the_intact_report_renders_it(capsys):
    code, out, err = show(REPORT_BYTES, capsys)
    assert code == REPORT_DATA["exit_code"] and err == "" and "all_reduce" in out


# -- --expect TOML ----------------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        *("description", "job", "nodes", "gpus_per_node", "probes", "all_reduce", "at", "8M", "1\u212a"),
        *("min_busbw_gbps", "max_latency_us", "min_share_of_line_rate", "links", "min_ring_gbps"),
        *("stragglers", "warn_score", "fail_score", "ddp", "min_tokens_per_s", "a.b", "x y", ""),
    ]
)
SCALAR = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["1979-05-27", "[1, 2]", "{a = 1}"]),
)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, str) and value[:1] in "[{1" and value:
        return value  # a TOML literal as it is (dates, arrays, inline tables)
    return json.dumps(value)  # ints, and strings as basic strings


def toml_key(key: str) -> str:
    return key if key and all((c.isalnum() and c.isascii()) or c in "_-" for c in key) else json.dumps(key)


@st.composite
def toml_document(draw) -> str:
    """Tables, dotted keys and values of every type, in the schema's words and others."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            table = ".".join(toml_key(k) for k in draw(st.lists(KEYS, min_size=1, max_size=4)))
            lines.append(f"[{table}]")
        path = ".".join(toml_key(k) for k in draw(st.lists(KEYS, min_size=1, max_size=3)))
        lines.append(f"{path} = {toml_value(draw(SCALAR))}  # {draw(st.text(max_size=4))}")
    return "\n".join(line.replace("\n", " ") for line in lines)


@given(st.one_of(toml_document(), hostile_text(max_size=200), st.binary(max_size=200)))
@example('[probes.all_reduce.at]\n"1\u212a" = {min_busbw_gbps = 1}')  # KELVIN SIGN size key
@example('[probes.all_reduce.at."9999999999999999999999999T"]\nmin_busbw_gbps = 1')
@example("[stragglers]\nwarn_score = 0.5\nfail_score = nan")
def test_expect_file_raises_only_usage_error(content):
    path = SCRATCH / "expect.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    expectations = usage_error_or(load_expectations, path)
    if expectations is None:
        return
    assert expectations.rules
    for rule in expectations.rules:
        assert rule.line >= 1 and rule.key


# Valid --expect files in every TOML spelling: each bound becomes a rule citing its own line.
PROBES = ["all_reduce", "all_gather", "sendrecv"]
LEAVES = [
    *[("job", key) for key in ("nodes", "gpus_per_node", "nics_per_node")],
    *[("probes", p, key) for p in PROBES for key in ("min_busbw_gbps", "max_latency_us")],
    *[("probes", p, "min_share_of_line_rate") for p in PROBES],
    *[("probes", p, "at", size, "min_busbw_gbps") for p in PROBES for size in ("1G", "8M", "64K")],
    *[("links", key) for key in ("min_node_pair_gbps", "min_ring_gbps")],
    ("stragglers", "warn_score"),
    ("ddp", "min_tokens_per_s"),
]


def bound(draw, path) -> tuple[float, str]:
    """A value the schema accepts, and one way TOML writes it."""
    if path[0] == "job":
        number = draw(st.integers(1, 10**6))
        return number, draw(st.sampled_from([str(number), f"{number:_}", f"+{number}"]))
    if path[-1] in ("min_share_of_line_rate", "warn_score"):
        number = draw(st.floats(min_value=0.01, max_value=1))
    else:
        number = draw(st.floats(min_value=0.001, max_value=1e9))
    return number, repr(number)


def key_text(draw, key: str) -> str:
    return draw(st.sampled_from([key, f'"{key}"', f"'{key}'"]))


def dotted_text(draw, path) -> str:
    return " . ".join(key_text(draw, key) for key in path) if draw(st.booleans()) else ".".join(path)


def inline(draw, tree: dict) -> str:
    items = [
        f"{key_text(draw, key)} = {inline(draw, value) if isinstance(value, dict) else value}"
        for key, value in tree.items()
    ]
    return "{" + ", ".join(items) + "}"


@st.composite
def expect_document(draw) -> tuple[str, dict]:
    """(TOML text, {key path: (bound, line)}): a top table per style (headers, dotted keys, an
    inline table), comments and blank lines between, a multi-line description first."""
    chosen = draw(st.lists(st.sampled_from(LEAVES), min_size=1, max_size=8, unique=True))
    leaves = {path: bound(draw, path) for path in chosen}
    root: list[tuple[str, list]] = []  # (line text, paths it holds): before any [header]
    tables: list[tuple[str, list]] = []
    if draw(st.booleans()):
        root.append(('description = """8x H100\nnodes, "quoted" \\\\ \' """', []))
    for top in dict.fromkeys(path[0] for path in chosen):
        paths = [p for p in chosen if p[0] == top]
        style = draw(st.sampled_from(["headers", "dotted", "inline"]))
        if style == "dotted":
            root += [(f"{dotted_text(draw, p)} = {leaves[p][1]}", [p]) for p in paths]
        elif style == "inline":
            tree: dict = {}
            for p in paths:
                node = tree
                for key in p[1:-1]:
                    node = node.setdefault(key, {})
                node[p[-1]] = leaves[p][1]
            root.append((f"{key_text(draw, top)} = {inline(draw, tree)}", paths))
        else:
            for parent in dict.fromkeys(p[:-1] for p in paths):
                tables.append((f"[{dotted_text(draw, parent)}]", []))
                tables += [
                    (f"{key_text(draw, p[-1])} = {leaves[p][1]}", [p]) for p in paths if p[:-1] == parent
                ]
    lines, where = [], {}
    for text, paths in root + tables:
        lines += draw(st.lists(st.sampled_from(["", "# a comment", "  ", "# [job] nodes = 1"]), max_size=2))
        first = len(lines) + 1
        lines.append(text + draw(st.sampled_from(["", "  # why", "\t"])))
        where.update({p: first for p in paths})
        lines = "\n".join(lines).split("\n")  # the description is several lines
    return "\n".join(lines), {p: (leaves[p][0], where[p]) for p in chosen}


@given(expect_document())
def test_a_valid_expect_file_gives_each_bound_a_rule_on_its_line(document):
    text, leaves = document
    expectations = parse_expectations(text, "expect.toml")
    rules = {rule.path: rule for rule in expectations.rules}
    assert set(rules) == set(leaves), text
    for path, (value, line) in leaves.items():
        assert rules[path].bound == value
        assert rules[path].line == line, (path, text)


def compare_cli(old: bytes, new: bytes, capsys, *flags: str) -> tuple[int, str, str]:
    """`nccldoctor compare OLD NEW` as cli.main runs it, in this process (see show())."""
    paths = SCRATCH / "old.json", SCRATCH / "new.json"
    for path, data in zip(paths, (old, new), strict=True):
        path.write_bytes(data)
    args = parse_args(["compare", *map(str, paths), *flags])
    try:
        code = load("compare").run(args)
    except UsageError as exc:
        print(f"nccldoctor: error: {exc}", file=sys.stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


# Fewer examples: each one compares and draws two reports (~0.3 s).
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(
    data=corrupted_report(),
    old_is_corrupted=st.booleans(),
    flags=st.sampled_from([(), ("--json",), ("--markdown",)]),
)
@example(data=json.dumps({**REPORT_DATA, "job": []}).encode(), old_is_corrupted=False, flags=())
def test_compare_with_a_corrupted_report_is_one_line_and_exit_2_or_a_comparison(
    data, old_is_corrupted, flags, capsys
):
    old, new = (data, REPORT_BYTES) if old_is_corrupted else (REPORT_BYTES, data)
    code, out, err = compare_cli(old, new, capsys, *flags)
    assert "Traceback" not in out + err
    if code == 2:
        assert out == "" and err.count("\n") == 1 and err.startswith("nccldoctor: error: compare: ")
    else:
        assert code in (0, 1) and err == ""


@settings(max_examples=25)
@given(corrupted_report())
@example(json.dumps({**REPORT_DATA, "job": []}).encode())  # AttributeError after the whole run
def test_a_corrupted_baseline_never_costs_the_run_its_report(data):
    """--baseline is read after the measurements: a bad file is a note in the report."""
    from nccldoctor.config import GateOptions
    from nccldoctor.gate import judge_baseline
    from nccldoctor.reports.json_report import load as load_report

    path = SCRATCH / "baseline.json"
    path.write_bytes(data)
    report = load_report(REPORT)
    judge_baseline(report, GateOptions(baseline=path))
    assert "baseline" in report.sections
