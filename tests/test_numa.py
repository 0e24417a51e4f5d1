"""Where a rank's host<->device copies run: its GPU's NUMA node and its CPU binding (fake sysfs)."""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import nccldoctor.probes.health as health
from nccldoctor.numa import CopyPlacement, copy_placement, parse_cpulist, sysfs_bus_id
from nccldoctor.probes.gpu_device import pci_bus_id
from nccldoctor.probes.health.stragglers import ScoreThresholds

GPU = "0000:53:00.0"


def fake_sysfs(root: Path, nodes: dict[int, str], gpus: dict[str, int]) -> Path:
    """A /sys with `nodes` (node -> cpulist) and PCI devices (bus id -> numa_node)."""
    for node, cpulist in nodes.items():
        (root / f"devices/system/node/node{node}").mkdir(parents=True)
        (root / f"devices/system/node/node{node}/cpulist").write_text(f"{cpulist}\n")
    (root / "devices/system/node/online").parent.mkdir(parents=True, exist_ok=True)
    (root / "devices/system/node/online").write_text("0-1\n")  # not a node directory
    for bus_id, node in gpus.items():
        (root / "bus/pci/devices" / bus_id).mkdir(parents=True)
        (root / "bus/pci/devices" / bus_id / "numa_node").write_text(f"{node}\n")
    return root


@pytest.fixture
def two_sockets(tmp_path):
    return fake_sysfs(tmp_path, {0: "0-3,8-11", 1: "4-7,12-15"}, {GPU: 1})


def test_cpulists_and_bus_ids_read_as_the_kernel_and_nvml_write_them():
    assert parse_cpulist("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpulist("\n") == set()
    assert sysfs_bus_id("00000000:53:00.0") == GPU  # NVML's 8-digit domain
    assert sysfs_bus_id("0000:AB:00.0") == "0000:ab:00.0"


@pytest.mark.parametrize(
    ("cpus", "bound"),
    [({4, 5, 12}, True), ({5}, True), ({0, 1}, False), ({3, 4}, False), (set(range(16)), False)],
)
def test_a_rank_is_bound_when_all_its_cpus_are_on_its_gpus_node(two_sockets, cpus, bound):
    assert copy_placement("00000000:53:00.0", cpus, two_sockets) == CopyPlacement(1, bound)


def test_on_one_numa_node_every_copy_is_local(tmp_path):
    sysfs = fake_sysfs(tmp_path, {0: "0-7"}, {GPU: -1})  # single-socket hosts often say -1
    assert copy_placement(GPU, {0, 1}, sysfs) == CopyPlacement(0, True)


def test_an_unknown_gpu_node_or_bus_id_or_sysfs_is_not_known(two_sockets, tmp_path):
    sysfs = fake_sysfs(tmp_path / "other", {0: "0-3", 1: "4-7"}, {GPU: -1})
    assert copy_placement(GPU, {4}, sysfs) == CopyPlacement()
    assert copy_placement(None, {4}, two_sockets) == CopyPlacement()
    assert copy_placement("0000:99:00.0", {4}, two_sockets) == CopyPlacement()  # not in sysfs
    assert copy_placement(GPU, {4}, tmp_path / "missing") == CopyPlacement()


def test_the_pci_bus_id_comes_from_torchs_device_properties(monkeypatch):
    props = SimpleNamespace(pci_domain_id=0, pci_bus_id=0x53, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    assert pci_bus_id(torch.device("cuda", 0)) == GPU
    assert pci_bus_id(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace())
    assert pci_bus_id(torch.device("cuda", 0)) is None  # an older torch without the fields


def check_on(device: torch.device) -> health.HealthCheck:
    job = SimpleNamespace(device=device)
    return health.HealthCheck(job, None, ScoreThresholds(), lambda label: None, lambda: 5.0)


def test_each_gpu_rank_publishes_its_placement_and_a_cpu_rank_nothing(two_sockets, monkeypatch):
    monkeypatch.setattr(health, "pci_bus_id", lambda device: GPU)
    monkeypatch.setattr(health, "this_process_cpus", lambda: {0, 1, 2, 3})  # the other socket
    check = check_on(torch.device("cuda", 0))
    check.sysfs = two_sockets
    assert check._placement() == (1.0, 0.0)
    assert all(math.isnan(v) for v in check_on(torch.device("cpu"))._placement())
    assert health._placement_of([1.0, 0.0]) == CopyPlacement(1, False)
    assert health._placement_of([math.nan, math.nan]) == CopyPlacement()
