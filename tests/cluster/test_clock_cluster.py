"""Clock offsets across three emulated nodes, one of them with its wall clock really shifted.

The nodes share this machine's clock, so node 1's is moved by libfaketime: its rank reads
CLOCK_REALTIME 5 s ahead, while the monotonic clock, which deadlines use, stays true. Only the
rank loads it, not torchrun's agent (clock_exchange.py says why). The exchange runs over
torchrun's own store, as the bench's consistency phase does before the process group forms.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
SCRIPT = Path(__file__).with_name("clock_exchange.py")
SHIFT_S = 5.0
TOLERANCE_S = 0.005  # floats through JSON; libfaketime's shift itself is exact
LIBFAKETIME = (  # Debian/Ubuntu's libfaketime package; a build from source installs the last
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def libfaketime() -> str:
    found = [path for pattern in LIBFAKETIME for path in sorted(glob.glob(pattern))]
    if found:
        return found[0]
    reason = "needs libfaketime (apt-get install libfaketime)"
    if os.environ.get("NCCLDOCTOR_REQUIRE_CLUSTER") == "1":  # CI installs it: a skip would hide that
        pytest.fail(reason)
    pytest.skip(reason)


def printed(log: str, tag: str) -> dict:
    lines = [line for line in log.splitlines() if line.startswith(f"{tag} ")]
    assert len(lines) == 1, log
    return json.loads(lines[0].removeprefix(f"{tag} "))


def test_a_node_clock_5s_ahead_is_measured_within_its_uncertainty_and_named(make_cluster, tmp_path):
    faketime = {
        "WORKER_LD_PRELOAD": libfaketime(),  # clock_exchange.py preloads it in the rank only
        "FAKETIME": f"+{SHIFT_S:g}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    cluster = make_cluster(nodes=3, nics=("fast0",))
    run = cluster.torchrun(1, [], tmp_path, target=[str(SCRIPT)], node_env={1: faketime}, timeout=120)
    assert not run.timed_out and run.returncodes == {0: 0, 1: 0, 2: 0}, run.logs

    result = printed(run.logs[0], "CLOCKS")
    offsets = result["offsets"]
    assert offsets["0"] == {"offset_s": 0.0, "uncertainty_s": 0.0, "rounds": 0}  # the reference
    shifted, plain = offsets["1"], offsets["2"]
    assert shifted["rounds"] == plain["rounds"] == 8
    assert abs(shifted["offset_s"] - SHIFT_S) <= shifted["uncertainty_s"] + TOLERANCE_S, shifted
    assert abs(plain["offset_s"]) <= plain["uncertainty_s"] + TOLERANCE_S, plain
    assert max(shifted["uncertainty_s"], plain["uncertainty_s"]) < 0.1  # a local store: milliseconds
    assert printed(run.logs[1], "CLOCK") == {"1": shifted}  # what node 1 measured is what rank 0 read

    (finding,) = result["findings"]
    assert finding["code"] == "clock_skew" and finding["severity"] == "warn"
    assert finding["nodes"] == [1], finding
    host1 = cluster.members[1].hostname
    assert f"node 1 ({host1}) is 5 s ± " in finding["message"], finding["message"]
    assert "ahead of rank 0's clock" in finding["message"]
    print(f"node 1: {shifted}; node 2: {plain}")  # the measured error, for the record (pytest -s)
