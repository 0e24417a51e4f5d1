"""Rank 0's judgement of every node's facts: versions, ranks and GPUs, environment.

Each check compares one value per node against the majority (majority.py) and names the odd
node(s) out; where no value has a majority (2 nodes that differ), it says so and lists every
node's value instead of guessing which node is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

from nccldoctor.consistency.facts import MASKED, NodeFacts
from nccldoctor.consistency.majority import Majority, node_text, odd_ones_out
from nccldoctor.findings import Finding, Severity, make_finding

# A mismatch in these breaks or silently changes the job: fail. The driver only has to be new
# enough for the CUDA runtime, and a named package is the user's own concern: warn.
FAIL_COMPONENTS = ("python", "torch", "cuda", "nccl", "nccldoctor")
COMPONENT_NAMES = {
    "python": "Python",
    "torch": "torch",
    "cuda": "the CUDA runtime torch was built with",
    "nccl": "NCCL",
    "nccldoctor": "nccldoctor",
    "driver": "the NVIDIA driver",
}


def where(node: int, facts: Mapping[int, NodeFacts]) -> str:
    return node_text(node, {n: f.hostname for n, f in facts.items()})


def nodes_text(nodes: list[int], facts: Mapping[int, NodeFacts]) -> str:
    return ", ".join(where(n, facts) for n in nodes)


def describe(majority: Majority, facts: Mapping[int, NodeFacts], shown: Callable[[Any], str]) -> str:
    """'node 2 (h2) has X, while the other 3 nodes have Y', or every node's value on a tie."""
    if majority.tie:
        each = "; ".join(f"{nodes_text(n, facts)}: {shown(v)}" for v, n in majority.groups.items())
        return f"no value is held by a majority, so no node can be called the odd one ({each})"
    odd = "; ".join(
        f"{nodes_text(nodes, facts)} {_has(len(nodes))} {shown(value)}"
        for value, nodes in majority.groups.items()
        if value != majority.majority
    )
    others = len(majority.groups[majority.majority])
    plural = "s" if others > 1 else ""
    return f"{odd}, while the other {others} node{plural} {_has(others)} {shown(majority.majority)}"


def _has(count: int) -> str:
    return "has" if count == 1 else "have"


# -- versions ----------------------------------------------------------------------------------


def comparable_version(component: str, value: str | None) -> Hashable:
    """Python is compared by minor version (3.11.7 and 3.11.9 run the same bytecode)."""
    if component == "python" and value:
        return ".".join(value.split(".")[:2])
    return value


def judge_versions(facts: Mapping[int, NodeFacts]) -> list[Finding]:
    components = list(dict.fromkeys(c for f in facts.values() for c in f.versions))
    findings = []
    for component in components:
        values = {n: comparable_version(component, f.versions.get(component)) for n, f in facts.items()}
        majority = odd_ones_out(values)
        if majority.agree:
            continue
        findings.append(_version_finding(component, majority, facts))
    return findings


def _version_finding(component: str, majority: Majority, facts: Mapping[int, NodeFacts]) -> Finding:
    package = component.removeprefix("package:")
    name = COMPONENT_NAMES.get(component, package)
    severity = Severity.FAIL if component in FAIL_COMPONENTS else Severity.WARN
    full = {n: f.versions.get(component) for n, f in facts.items()}
    return make_finding(
        "version_mismatch",
        f"{name} differs between nodes: {describe(majority, facts, _version_text)}",
        nodes=majority.differing,
        severity=severity,
        evidence={"component": component, "versions": full, "majority": majority.majority},
        fix=_version_fix(component, package, majority),
    )


def _version_text(value: Any) -> str:
    return "nothing installed" if value is None else str(value)


def _version_fix(component: str, package: str, majority: Majority) -> str:
    target = f" {majority.majority}" if majority.majority else " one version"
    if component == "driver":
        return f"install the same NVIDIA driver{target} on every node (or drain the odd nodes)"
    if component == "python":
        return f"run every node from the same environment (Python{target}: one container image or venv)"
    pip_name = "torch" if component in ("torch", "cuda", "nccl") else package
    return (
        f"install the same {pip_name}{target} on every node (pip install '{pip_name}=={majority.majority}'"
        " in the job's environment), or use one container image"
        if majority.majority
        else f"install the same {pip_name} on every node, or use one container image"
    )


# -- ranks and GPUs ----------------------------------------------------------------------------


def judge_layout(facts: Mapping[int, NodeFacts], backend: str) -> list[Finding]:
    return _uneven_ranks(facts) + [f for n in sorted(facts) for f in _gpu_count(facts[n], facts, backend)]


def _uneven_ranks(facts: Mapping[int, NodeFacts]) -> list[Finding]:
    majority = odd_ones_out({n: f.ranks for n, f in facts.items()})
    if majority.agree:
        return []
    return [
        make_finding(
            "rank_layout_uneven",
            f"ranks per node differ: {describe(majority, facts, lambda r: f'{r} rank(s)')} "
            "(torchrun accepts it; data- and tensor-parallel groups usually do not)",
            nodes=majority.differing,
            evidence={"ranks_per_node": {n: f.ranks for n, f in facts.items()}},
            fix="start the same --nproc-per-node on every node",
        )
    ]


def _gpu_count(node: NodeFacts, facts: Mapping[int, NodeFacts], backend: str) -> list[Finding]:
    """More ranks than visible GPUs fails NCCL; fewer leaves GPUs idle. A node without GPUs
    (a Gloo job on CPUs) has nothing to compare."""
    visible = node.gpus_visible
    if visible == 0 or node.ranks == visible:
        return []
    here = where(node.node, facts)
    cvd = "" if node.cuda_visible_devices is None else f" (CUDA_VISIBLE_DEVICES={node.cuda_visible_devices})"
    evidence = {"node": node.node, "ranks": node.ranks, "visible_gpus": visible}
    evidence["nvml_gpus"] = node.gpus_physical
    fix = f"torchrun --nproc-per-node {visible} on {here}, or fix CUDA_VISIBLE_DEVICES"
    if node.ranks > visible and backend == "nccl":
        message = (
            f"{here} runs {node.ranks} ranks but sees {visible} GPU(s){cvd}: NCCL fails on the extra ranks"
        )
        severity = Severity.FAIL
    elif node.ranks < visible:
        message = (
            f"{here} runs {node.ranks} ranks on {visible} visible GPU(s){cvd}: {visible - node.ranks} idle"
        )
        severity = Severity.INFO
    else:
        return []
    return [
        make_finding(
            "gpu_count_mismatch", message, nodes=[node.node], evidence=evidence, fix=fix, severity=severity
        )
    ]


# -- environment -------------------------------------------------------------------------------


def judge_env(facts: Mapping[int, NodeFacts]) -> list[Finding]:
    """One env_mismatch per variable that differs between nodes or is set on some only."""
    names = sorted({name for f in facts.values() for name in f.env})
    findings = []
    for name in names:
        values = {n: f.env.get(name) for n, f in facts.items()}
        majority = odd_ones_out(values)
        if majority.agree:
            continue
        shown = _env_text(values)
        findings.append(
            make_finding(
                "env_mismatch",
                f"{name} differs between nodes: {describe(majority, facts, shown)}",
                nodes=majority.differing,
                evidence={"variable": name, "values": {n: shown(v) for n, v in values.items()}},
                fix=f"export the same {name} on every node (or unset it everywhere) before torchrun",
            )
        )
    return findings


def _env_text(values: Mapping[int, str | None]) -> Callable[[str | None], str]:
    """How a value is shown: a secret's only as "masked value A/B/..." (compared by digest,
    never printed), so that two different secrets still read as different."""
    digests = sorted({v for v in values.values() if v and v.startswith(MASKED)})
    letters = {digest: chr(ord("A") + i) for i, digest in enumerate(digests)}

    def shown(value: str | None) -> str:
        if value is None:
            return "it unset"
        if value in letters:
            return f"masked value {letters[value]}"
        return repr(value)

    return shown
