"""Job consistency across nodes: versions, ranks and GPUs, environment (pure logic)."""

from __future__ import annotations

import dataclasses

import pytest

from nccldoctor.consistency.facts import NodeFacts, compared_env, read_versions
from nccldoctor.consistency.judge import judge_env, judge_layout, judge_versions
from nccldoctor.consistency.section import consistency_section
from nccldoctor.findings import Severity

VERSIONS = {
    "python": "3.11.7",
    "torch": "2.13.0+cu128",
    "cuda": "12.8",
    "nccl": "2.27.5",
    "nccldoctor": "0.1.0",
    "driver": "570.86.15",
}


def node(n: int, **changes) -> NodeFacts:
    facts = NodeFacts(
        node=n,
        hostname=f"gpu-{n}",
        ranks=8,
        gpus_visible=8,
        gpus_physical=8,
        cuda_visible_devices=None,
        versions=dict(VERSIONS),
        env={"NCCL_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "1"},
    )
    return dataclasses.replace(facts, **changes)


def cluster(count=4, odd=None):
    """`count` healthy nodes; odd={node: {field: value}} changes some."""
    return {n: node(n, **(odd or {}).get(n, {})) for n in range(count)}


def test_another_torch_on_one_node_is_a_failing_version_mismatch_naming_only_it():
    (finding,) = judge_versions(cluster(odd={2: {"versions": {**VERSIONS, "torch": "2.12.1+cu126"}}}))
    assert (finding.code, finding.severity, finding.nodes) == ("version_mismatch", Severity.FAIL, [2])
    assert finding.evidence["component"] == "torch"
    assert "node 2 (gpu-2) has 2.12.1+cu126, while the other 3 nodes have 2.13.0+cu128" in finding.message
    assert "pip install 'torch==2.13.0+cu128'" in finding.fix


def test_a_driver_or_a_named_package_differing_warns_and_python_counts_only_its_minor():
    facts = cluster(
        odd={
            1: {
                "versions": {
                    **VERSIONS,
                    "driver": "550.54.15",
                    "python": "3.11.9",
                    "package:transformers": None,
                }
            },
            0: {"versions": {**VERSIONS, "package:transformers": "4.44.0"}},
            2: {"versions": {**VERSIONS, "package:transformers": "4.44.0"}},
            3: {"versions": {**VERSIONS, "package:transformers": "4.44.0"}},
        }
    )
    found = {f.evidence["component"]: f for f in judge_versions(facts)}
    assert set(found) == {"driver", "package:transformers"}  # 3.11.9 vs 3.11.7: the same minor
    assert all(f.severity is Severity.WARN and f.nodes == [1] for f in found.values())
    assert "node 1 (gpu-1) has nothing installed" in found["package:transformers"].message


def test_two_nodes_that_differ_cannot_say_which_is_odd():
    (finding,) = judge_versions(cluster(2, odd={1: {"versions": {**VERSIONS, "nccl": "2.21.5"}}}))
    assert finding.nodes == [0, 1] and "no node can be called the odd one" in finding.message
    assert "node 0 (gpu-0): 2.27.5" in finding.message and "node 1 (gpu-1): 2.21.5" in finding.message


def test_uneven_ranks_and_gpu_counts():
    facts = cluster(odd={2: {"ranks": 4}})
    found = judge_layout(facts, "nccl")
    uneven = next(f for f in found if f.code == "rank_layout_uneven")
    assert (
        uneven.nodes == [2]
        and "node 2 (gpu-2) has 4 rank(s), while the other 3 nodes have 8" in uneven.message
    )
    idle = next(f for f in found if f.code == "gpu_count_mismatch")
    assert (idle.severity, idle.nodes) == (Severity.INFO, [2]) and "4 idle" in idle.message
    too_many = judge_layout(cluster(odd={1: {"gpus_visible": 4, "cuda_visible_devices": "0,1,2,3"}}), "nccl")
    (fails,) = [f for f in too_many if f.code == "gpu_count_mismatch"]
    assert (
        fails.severity is Severity.FAIL
        and fails.nodes == [1]
        and "CUDA_VISIBLE_DEVICES=0,1,2,3" in fails.message
    )
    cpus = cluster(odd={n: {"gpus_visible": 0, "gpus_physical": 0, "ranks": 2} for n in range(4)})
    assert judge_layout(cpus, "gloo") == []  # a CPU job has no GPU count to compare


def test_a_variable_set_on_some_nodes_only_or_to_another_value_is_env_mismatch():
    facts = cluster(
        odd={3: {"env": {"NCCL_SOCKET_IFNAME": "eth1", "OMP_NUM_THREADS": "1", "NCCL_DEBUG": "INFO"}}}
    )
    found = {f.evidence["variable"]: f for f in judge_env(facts)}
    assert set(found) == {"NCCL_SOCKET_IFNAME", "NCCL_DEBUG"}
    assert found["NCCL_SOCKET_IFNAME"].nodes == [3] and "'eth1'" in found["NCCL_SOCKET_IFNAME"].message
    assert "while the other 3 nodes have it unset" in found["NCCL_DEBUG"].message
    assert all(f.severity is Severity.WARN for f in found.values())


def test_secret_values_are_compared_by_digest_and_never_shown():
    a = compared_env({"NCCL_IB_TOKEN": "hunter2", "PATH": "/bin", "CUDA_VISIBLE_DEVICES": "3"})
    b = compared_env({"NCCL_IB_TOKEN": "other"})
    assert set(a) == {"NCCL_IB_TOKEN"} and a["NCCL_IB_TOKEN"] != b["NCCL_IB_TOKEN"]
    facts = cluster(3, odd={0: {"env": a}, 1: {"env": a}, 2: {"env": b}})
    (finding,) = judge_env(facts)
    assert finding.nodes == [2] and "masked value" in finding.message
    assert "hunter2" not in str(finding.to_dict()) and a["NCCL_IB_TOKEN"] not in str(finding.to_dict())
    section = consistency_section(facts, {}, [finding])
    assert "hunter2" not in str(section) and a["NCCL_IB_TOKEN"] not in str(section)


def test_versions_are_read_without_importing_the_named_packages():
    import sys

    versions = read_versions(["pytest", "surely-not-installed-pkg"], driver=None)
    assert versions["torch"] and versions["python"].count(".") == 2 and versions["nccldoctor"]
    assert versions["package:pytest"] and versions["package:surely-not-installed-pkg"] is None
    assert "surely_not_installed_pkg" not in sys.modules


def test_the_section_lists_what_agrees_and_only_the_odd_values():
    facts = cluster(odd={2: {"versions": {**VERSIONS, "torch": "2.12.1"}}})
    section = consistency_section(facts, {}, judge_versions(facts))
    (differs,) = section["differs"]
    assert differs == {"check": "torch", "majority": "2.13.0+cu128", "odd": {"2": "2.12.1"}}
    assert {"check": "nccl", "value": "2.27.5"} in section["agree"]
    assert section["findings"] == ["version_mismatch"]


@pytest.mark.parametrize("argv", [["--clock-warn", "5", "--clock-fail", "2"], ["--check-package", "a b"]])
def test_bad_consistency_flags_are_usage_errors(argv):
    from nccldoctor.config import parse_args
    from nccldoctor.errors import UsageError

    with pytest.raises((UsageError, SystemExit)):
        parse_args(argv)
