"""Job consistency across emulated nodes: each test makes one node differ and asserts that the
consistency phase names that node, and only it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
QUICK = ["-e", "8", "-n", "1", "-w", "0", "--probes", "all_reduce", "--ifaces", "off", "--timeout", "120"]
QUICK += ["--no-ddp", "--health", "off", "--no-html"]
CODES = ("version_mismatch", "code_mismatch", "path_missing", "path_differs", "env_mismatch", "clock_skew")
CODES += ("rank_layout_uneven", "gpu_count_mismatch")


def consistency_findings(run) -> list[dict]:
    return [f for f in run.report["findings"] if f["code"] in CODES]


def fake_distribution(root: Path, name: str, version: str) -> Path:
    """A directory that, first on PYTHONPATH, makes importlib.metadata see `name` at `version`."""
    info = root / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root


def code_tree(root: Path, changed: bool = False) -> Path:
    for i in range(20):
        (root / "pkg").mkdir(parents=True, exist_ok=True)
        (root / "pkg" / f"module{i}.py").write_text(f"VALUE = {i}\n")
    (root / "train.py").write_text("LR = 0.1\n" if not changed else "LR = 0.2\n")
    return root


def test_a_package_version_on_one_node_is_a_version_mismatch_naming_only_it(make_cluster, tmp_path):
    cluster = make_cluster(nodes=3, nics=("fast0",))
    old = fake_distribution(tmp_path / "old", "fakelib", "1.0.0")
    new = fake_distribution(tmp_path / "new", "fakelib", "2.0.0")
    node_env = {n: {"PYTHONPATH": str(new if n == 1 else old)} for n in range(3)}
    args = [*QUICK, "--check-package", "fakelib"]
    run = cluster.torchrun(1, args, tmp_path / "out", node_env=node_env, timeout=180)
    (finding,) = consistency_findings(run)
    assert (finding["code"], finding["nodes"], finding["severity"]) == ("version_mismatch", [1], "warn"), (
        finding
    )
    assert finding["evidence"]["versions"] == {"0": "1.0.0", "1": "2.0.0", "2": "1.0.0"}
    assert run.report["verdict"] == "warn" and run.returncodes == {0: 0, 1: 0, 2: 0}


def test_one_changed_file_in_one_nodes_code_is_a_code_mismatch_naming_the_node_and_file(
    make_cluster, tmp_path
):
    cluster = make_cluster(nodes=3, nics=("fast0",))
    target = str(tmp_path / "repo")  # the same path on every node, another copy behind it on each
    copies = {n: code_tree(tmp_path / f"copy{n}", changed=n == 2) for n in range(3)}
    binds = {n: [(str(copies[n]), target)] for n in range(3)}
    run = cluster.torchrun(1, [*QUICK, "--code", target], tmp_path / "out", binds=binds, timeout=180)
    (finding,) = consistency_findings(run)
    assert (finding["code"], finding["nodes"], finding["severity"]) == ("code_mismatch", [2], "fail"), finding
    assert "train.py" in finding["message"] and "pkg/module" not in finding["message"]
    assert run.report["verdict"] == "fail" and run.report["exit_code"] == 1


def test_a_path_missing_on_one_node_and_a_directory_short_of_files_on_another(make_cluster, tmp_path):
    cluster = make_cluster(nodes=4, nics=("fast0",))
    target = tmp_path / "data"
    views = {}
    for n in range(4):
        view = tmp_path / f"view{n}"
        (view / "train").mkdir(parents=True)
        count = 40 if n == 3 else 50
        for i in range(count):
            (view / "train" / f"shard-{i:04d}.bin").write_bytes(b"x" * 100)
        if n != 1:
            (view / "labels.csv").write_text("a,b\n")
        views[n] = view
    binds = {n: [(str(views[n]), str(target))] for n in range(4)}
    args = [*QUICK, "--check-path", str(target / "labels.csv"), "--check-path", str(target / "train")]
    run = cluster.torchrun(1, args, tmp_path / "out", binds=binds, timeout=180)
    found = {f["code"]: f for f in consistency_findings(run)}
    assert set(found) == {"path_missing", "path_differs"}, found
    assert found["path_missing"]["nodes"] == [1] and "labels.csv" in found["path_missing"]["message"]
    assert found["path_differs"]["nodes"] == [3] and "40" in found["path_differs"]["message"]


def test_a_healthy_run_gets_nothing_from_the_consistency_phase(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2, nics=("fast0",))
    shared = code_tree(tmp_path / "repo")
    args = [
        *QUICK,
        "--code",
        str(shared),
        "--check-path",
        str(shared / "train.py"),
        "--check-package",
        "torch",
    ]
    run = cluster.torchrun(2, args, tmp_path / "out", timeout=180)
    assert run.returncodes == {0: 0, 1: 0}, run.logs[0][-3000:]
    assert consistency_findings(run) == []
    section = run.report["consistency"]
    assert section["differs"] == [] and len(section["nodes"]) == 2
    assert {a["check"] for a in section["agree"]} >= {"torch", "python", "ranks per node", f"code {shared}"}
    clock = section["nodes"][1]["clock"]
    assert abs(clock["offset_s"]) <= clock["uncertainty_s"] + 0.05, clock  # one machine, one clock
