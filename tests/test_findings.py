import re
from pathlib import Path

import pytest

from nccldoctor.findings import CATALOG, Severity, exit_code, make_finding, verdict

README = Path(__file__).resolve().parents[1] / "README.md"


def test_finding_defaults_come_from_the_catalogue():
    f = make_finding("wrong_data", "bad", ranks=[3, 1, 3], nodes=[1, 0])
    assert f.severity is Severity.FAIL
    assert f.fix == CATALOG["wrong_data"].fix
    assert f.ranks == [1, 3] and f.nodes == [0, 1]
    assert f.to_dict()["severity"] == "fail"


def test_unknown_code_is_a_programming_error():
    with pytest.raises(KeyError):
        make_finding("no_such_code", "x")


@pytest.mark.parametrize(
    ("severities", "complete", "expected"),
    [
        ([], True, "pass"),
        (["info"], True, "pass"),
        (["info", "warn"], True, "warn"),
        (["warn", "fail", "info"], True, "fail"),
        ([], False, "error"),
        (["fail"], False, "error"),
    ],
)
def test_verdict_is_the_worst_severity_or_error(severities, complete, expected):
    code_for = {"info": "probe_skipped", "warn": "probe_skipped", "fail": "wrong_data"}
    findings = [make_finding(code_for[s], "m", severity=Severity(s)) for s in severities]
    assert verdict(findings, complete) == expected


@pytest.mark.parametrize(
    ("verdict_", "strict", "code"),
    [
        ("pass", False, 0),
        ("warn", False, 0),
        ("warn", True, 1),
        ("fail", False, 1),
        ("error", False, 3),
        ("error", True, 3),
    ],
)
def test_exit_codes(verdict_, strict, code):
    assert exit_code(verdict_, strict) == code


def test_readme_table_lists_every_code_with_its_severity():
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (info|warn|fail)", README.read_text(), re.MULTILINE))
    assert set(rows) == set(CATALOG), "README's finding table and the catalogue differ"
    for code, spec in CATALOG.items():
        assert rows[code] == spec.severity.value, code
