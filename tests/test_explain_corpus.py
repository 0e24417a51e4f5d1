"""`nccldoctor explain` on the corpus of real log excerpts from public issues.

tests/fixtures/explain/corpus.json (built on its own branch) lists
{"file", "source", "cause", "expect": {"code", "ranks", "hosts"}}; for every entry the ROOT-CAUSE
finding (the first) must have the expected code, and the expected ranks and hostnames (and, for
a collective timeout, the suspects) when the entry gives them. Skipped while the manifest is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nccldoctor.explain.engine import explain
from nccldoctor.explain.events import scan
from nccldoctor.explain.reader import expand

CORPUS = Path(__file__).resolve().parent / "fixtures" / "explain"
MANIFEST = CORPUS / "corpus.json"


def entries() -> list:
    if not MANIFEST.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no {MANIFEST.name} yet"), id="no-corpus")]
    return [pytest.param(entry, id=entry["file"]) for entry in json.loads(MANIFEST.read_text())]


@pytest.mark.parametrize("entry", entries())
def test_the_root_cause_is_the_one_the_issue_found(entry):
    findings = explain(scan(expand([str(CORPUS / entry["file"])])))
    expect = entry["expect"]
    assert findings, f"nothing found; the issue's cause: {entry['cause']} ({entry['source']})"
    root = findings[0]
    assert root.code == expect["code"], f"{root.code}: {root.message} (source {entry['source']})"
    if expect.get("ranks") is not None:
        assert root.ranks == sorted(expect["ranks"]), root.message
    if expect.get("hosts") is not None:
        assert root.evidence.get("hosts") == sorted(expect["hosts"]), root.message
    if expect.get("suspects") is not None:  # a stalled rank the log shows by its silence
        assert root.evidence.get("suspects") == sorted(expect["suspects"]), root.message
