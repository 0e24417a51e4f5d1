"""Planning and judging the per-NIC sweep (synthetic inventories and outcomes)."""

from rowmaker import make_row

from nccldoctor.config import parse_args
from nccldoctor.net.infiniband import IbPort
from nccldoctor.net.interfaces import Iface
from nccldoctor.net.inventory import NodeNet
from nccldoctor.net.judge import judge_interfaces
from nccldoctor.net.nic_sweep import (
    NicResult,
    judge_sweep,
    line_rate_mbps,
    plan_nic_sweep,
    plan_sweep,
    summarize,
)
from nccldoctor.probes.nic_sweep import iface_variants, sweep_config
from nccldoctor.variants import Variant, VariantOutcome, child_env

LO = Iface("lo", ("127.0.0.1/8",), mtu=65536)


def node(rank, hostname_nic="eth1", extra=()):
    ifaces = [
        LO,
        Iface("eth0", (f"10.0.0.{rank + 1}/24",), speed_mbps=100000),
        Iface("eth1", (f"10.1.0.{rank + 1}/24",), speed_mbps=10000),
        Iface("docker0", ("172.17.0.1/16",)),
        *extra,
    ]
    address = next(i for i in ifaces if i.name == hostname_nic).addresses[0].split("/")[0]
    return NodeNet(rank, f"host{rank}", address, ifaces)


def plan(nodes, ifaces="auto", backend="gloo"):
    choices, _ = judge_interfaces(nodes, backend)
    return plan_sweep(nodes, choices, ifaces)


def test_auto_sweeps_real_interfaces_every_node_shares_and_knows_which_is_in_use():
    lonely = Iface("eth2", ("10.2.0.1/24",))  # only node 0 has it
    nodes = [node(0, extra=[lonely]), node(1)]
    assert plan(nodes) == (["eth0", "eth1"], "eth1", None)


def test_auto_does_nothing_on_one_node_or_with_one_candidate_and_off_is_off():
    assert plan([node(0)]) == ([], "eth1", None)
    assert plan([node(0), node(1)], "off") == ([], "eth1", None)
    one_nic = [
        NodeNet(r, f"h{r}", f"10.0.0.{r + 1}", [LO, Iface("eth0", (f"10.0.0.{r + 1}/24",))]) for r in range(2)
    ]
    assert plan(one_nic) == ([], "eth0", None)


def test_named_interfaces_must_exist_on_every_node():
    assert plan([node(0), node(1)], ["eth1", "eth0"]) == (["eth1", "eth0"], "eth1", None)
    sweep, _, usage = plan([node(0), node(1)], ["eth0", "ib0"])
    assert sweep == [] and usage.startswith("--ifaces: node 0 (host0) has no interface 'ib0'")


def test_variants_set_the_socket_variable_exactly():
    assert [v.env for v in iface_variants(["eth0"], "NCCL_SOCKET_IFNAME")] == [
        {"NCCL_SOCKET_IFNAME": "=eth0"}
    ]
    assert [v.env for v in iface_variants(["eth0"], "GLOO_SOCKET_IFNAME")] == [{"GLOO_SOCKET_IFNAME": "eth0"}]


def test_sweep_config_measures_latency_and_the_largest_size_of_at_least_1m():
    assert sweep_config(parse_args(["-e", "8M"]).collectives).sizes() == [8, 8 * 1024**2]
    assert sweep_config(parse_args(["-e", "64K"]).collectives).sizes() == [8, 1024**2]  # never only latency
    few = sweep_config(parse_args(["-n", "3", "-w", "0"]).collectives)
    assert (few.iters, few.warmup) == (10, 2)  # one noisy iteration cannot pick the NIC
    # Expectations are for the main run's rows: one naming a probe the sweep does not run is no error.
    expecting = parse_args(["--probes", "all_reduce,sendrecv", "--expect-busbw", "all_reduce=9,sendrecv=5"])
    assert sweep_config(expecting.collectives).probes == ["all_reduce"]


def rows(busbw, latency_us=50.0, size=1 << 20, wrong=0):
    return [
        make_row(size_bytes=8, time_us=latency_us, busbw_gbps=0.0),
        make_row(
            size_bytes=size, time_us=1000.0, busbw_gbps=busbw, wrong=wrong, wrong_ranks=[1] if wrong else []
        ),
    ]


def outcome(name, busbw=None, failure=None, wrong=0):
    variant = Variant("ifaces", name, {"GLOO_SOCKET_IFNAME": name})
    measured = rows(busbw, wrong=wrong) if busbw else []
    return VariantOutcome(variant, measured, {1: failure} if failure else {}, 3.0)


def test_summary_takes_bandwidth_at_the_largest_size_latency_at_8_bytes_and_line_rate():
    nodes = [node(0), node(1)]
    result = summarize(outcome("eth1", busbw=0.625), nodes)
    assert (result.busbw_gbps, result.latency_us, result.size_bytes) == (0.625, 50.0, 1 << 20)
    assert result.line_rate_mbps == 10000 and round(result.percent_of_line_rate) == 50
    failed = summarize(outcome("eth0", failure="timed out after 60 s in init_process_group"), nodes)
    assert failed.busbw_gbps is None and "rank 1: timed out" in failed.failed


def result(iface, busbw, failed=None):
    return NicResult(iface, f"GLOO_SOCKET_IFNAME={iface}", busbw, 40.0, 1 << 20, 0, failed)


def test_best_1_5x_faster_than_in_use_warns_naming_the_faster_one():
    (finding,) = judge_sweep([result("eth0", 1.5), result("eth1", 1.0)], "eth1", "gloo", [0, 1])
    assert finding.code == "iface_slower_than_best" and finding.nodes == [0, 1]
    assert finding.evidence["best"] == "eth0" and finding.evidence["in_use"] == "eth1"
    assert finding.fix.startswith("export GLOO_SOCKET_IFNAME=eth0")


def test_close_enough_or_already_best_is_quiet_and_failures_are_named():
    assert judge_sweep([result("eth0", 1.0), result("eth1", 0.7)], "eth1", "gloo", [0]) == []  # noise
    assert judge_sweep([result("eth0", 1.0), result("eth1", 0.2)], "eth0", "gloo", [0]) == []
    (failed,) = judge_sweep(
        [result("eth0", None, "rank 1: exited with 1"), result("eth1", 0.5)], "eth1", "nccl", [0]
    )
    assert failed.code == "sweep_variant_failed" and "eth0" in failed.message
    assert "NCCL_SOCKET_IFNAME" in failed.fix


def test_report_names_variants_left_out_for_time_and_wrong_data_in_a_variant():
    from nccldoctor.net.nic_sweep import report_sweep

    variants = iface_variants(["eth0", "eth1"], "GLOO_SOCKET_IFNAME")
    bad = outcome("eth0", busbw=1.0, wrong=3)
    findings, section = report_sweep(variants, [bad], "eth0", "gloo", [node(0), node(1)], lambda ranks: [1])
    codes = {f.code: f for f in findings}
    assert set(codes) == {"wrong_data", "probe_skipped"}
    assert codes["wrong_data"].message.startswith("per-NIC sweep: all_reduce") and codes[
        "wrong_data"
    ].ranks == [1]
    assert codes["probe_skipped"].evidence == {"not_measured": ["eth1"]}
    assert [r["iface"] for r in section["results"]] == ["eth0"] and section["rows"][0]["setting"]
    # The section holds the rows as report.json does: dicts with the sweep's labels, no round.
    assert section["rows"][0]["sweep"] == "ifaces" and "repeat" not in section["rows"][0]


# -- NCCL over InfiniBand: NCCL_SOCKET_IFNAME moves only bootstrap traffic, so ports are swept ----


def ib_port(device, rate_gbps=200.0, state="ACTIVE", link_layer="InfiniBand"):
    return IbPort(device, 1, state, f"{rate_gbps:g} Gb/sec (4X HDR)", rate_gbps, link_layer)


def ib_node(rank, ports=("mlx5_0", "mlx5_1")):
    with_ports = node(rank)
    with_ports.ib_ports = [p if isinstance(p, IbPort) else ib_port(p) for p in ports]
    return with_ports


def ib_plan(nodes, ifaces="auto", backend="nccl", env=None):
    choices, _ = judge_interfaces(nodes, backend)
    return plan_nic_sweep(nodes, choices, ifaces, backend, env or {})


def test_auto_on_an_all_ib_nccl_job_sweeps_the_ports_with_exact_hca_variants():
    plan = ib_plan([ib_node(0), ib_node(1)])
    assert (plan.names, plan.variable, plan.in_use, plan.usage) == (
        ["mlx5_0:1", "mlx5_1:1"],
        "NCCL_IB_HCA",
        None,  # NCCL uses every active port: none is "the one in use"
        None,
    )
    variants = iface_variants(plan.names, plan.variable)
    assert [(v.name, v.env) for v in variants] == [
        ("mlx5_0:1", {"NCCL_IB_HCA": "=mlx5_0:1"}),
        ("mlx5_1:1", {"NCCL_IB_HCA": "=mlx5_1:1"}),
    ]


def test_sockets_asked_for_gloo_or_a_node_without_ib_keep_the_socket_sweep():
    nodes = [ib_node(0), ib_node(1)]
    for env in ({"NCCL_IB_DISABLE": "1"}, {"NCCL_NET": "Socket"}):
        plan = ib_plan(nodes, env=env)
        assert (plan.names, plan.variable, plan.note) == (["eth0", "eth1"], "NCCL_SOCKET_IFNAME", None)
    gloo = ib_plan(nodes, backend="gloo")
    assert (gloo.names, gloo.variable, gloo.in_use) == (["eth0", "eth1"], "GLOO_SOCKET_IFNAME", "eth1")
    down = ib_node(1, [ib_port("mlx5_0", state="DOWN")])  # node 1 has no port NCCL could use
    assert ib_plan([ib_node(0), down]).variable == "NCCL_SOCKET_IFNAME"
    efa = ib_node(1, [ib_port("efa_0", link_layer="Unknown")])  # NCCL reaches EFA through a plugin
    assert ib_plan([ib_node(0), efa]).variable == "NCCL_SOCKET_IFNAME"


def test_a_port_one_node_lacks_or_has_down_is_not_swept():
    missing = ib_node(1, ["mlx5_0", "mlx5_1", ib_port("mlx5_2", state="DOWN")])
    nodes = [ib_node(0, ["mlx5_0", "mlx5_1", "mlx5_2"]), missing]
    assert ib_plan(nodes).names == ["mlx5_0:1", "mlx5_1:1"]
    one_left = [ib_node(0), ib_node(1, ["mlx5_0"])]  # nothing to compare mlx5_0:1 with
    assert (ib_plan(one_left).names, ib_plan(one_left).variable) == ([], "NCCL_IB_HCA")


def test_named_ib_ports_or_devices_sweep_the_hca_and_must_be_active_on_every_node():
    nodes = [ib_node(0), ib_node(1, ["mlx5_0", ib_port("mlx5_1", state="DOWN")])]
    plan = ib_plan(nodes, ["mlx5_0:1", "mlx5_1"])
    assert plan.variable == "NCCL_IB_HCA" and plan.names == ["mlx5_0:1", "mlx5_1"]
    assert plan.usage == (
        "--ifaces: node 1 (host1) has no active InfiniBand/RoCE port 'mlx5_1' (its active ports: mlx5_0:1)"
    )
    assert ib_plan(nodes, ["mlx5_0", "mlx5_0:1"]).usage is None


def test_named_interfaces_on_an_ib_job_sweep_the_socket_variable_with_a_note():
    plan = ib_plan([ib_node(0), ib_node(1)], ["eth0", "eth1"])
    assert (plan.names, plan.variable, plan.in_use) == (["eth0", "eth1"], "NCCL_SOCKET_IFNAME", "eth0")
    assert "only its bootstrap traffic" in plan.note and "--ifaces mlx5_0:1,mlx5_1:1" in plan.note
    assert ib_plan([ib_node(0), ib_node(1)], ["eth0", "mlx5_0:1"]).usage.startswith(
        "--ifaces: node 0 (host0) has no interface 'mlx5_0:1'"  # a mixed list is a socket list
    )
    assert ib_plan([node(0), node(1)], ["eth0", "eth1"]).note is None  # no IB: nothing to say


def test_the_variants_port_reaches_the_worker_over_the_users_own_setting():
    (variant,) = iface_variants(["mlx5_1:1"], "NCCL_IB_HCA")
    parent = {"NCCL_IB_HCA": "mlx5", "NCCL_SOCKET_IFNAME": "eth0", "PATH": "/bin"}
    env = child_env(parent, variant, {"NCCL_DEBUG": "INFO"}, {"NCCLDOCTOR_WORKER": "{}"})
    assert env["NCCL_IB_HCA"] == "=mlx5_1:1"  # the user's prefix list would take every mlx5 port
    assert env["NCCL_SOCKET_IFNAME"] == "eth0" and env["PATH"] == "/bin" and env["NCCL_DEBUG"] == "INFO"
    assert parent["NCCL_IB_HCA"] == "mlx5"  # the parent's own environment is left alone


def test_ib_line_rate_is_the_slowest_nodes_port_rate():
    nodes = [ib_node(0), ib_node(1, [ib_port("mlx5_0", 100.0), "mlx5_1"])]
    assert line_rate_mbps("mlx5_0:1", nodes, "NCCL_IB_HCA") == 100_000
    assert line_rate_mbps("mlx5_1", nodes, "NCCL_IB_HCA") == 200_000  # a device: its usable ports
    unknown = [ib_node(0), ib_node(1, [ib_port("mlx5_0", 0.0)])]
    assert line_rate_mbps("mlx5_0:1", unknown, "NCCL_IB_HCA") == 0
    ib_outcome = VariantOutcome(
        Variant("ifaces", "mlx5_0:1", {"NCCL_IB_HCA": "=mlx5_0:1"}), rows(6.25), {}, 3.0
    )
    assert round(summarize(ib_outcome, nodes, "NCCL_IB_HCA").percent_of_line_rate) == 50


def ib_result(port, busbw, failed=None):
    return NicResult(port, f"NCCL_IB_HCA={port}", busbw, 5.0, 1 << 26, 200_000, failed)


def test_a_port_2x_slower_than_the_best_is_ib_port_slow_with_the_exclusion():
    results = [ib_result("mlx5_0:1", 20.0), ib_result("mlx5_1:1", 10.0)]
    (finding,) = judge_sweep(results, None, "nccl", [0, 1], "NCCL_IB_HCA")
    assert finding.code == "ib_port_slow" and finding.severity.value == "warn" and finding.nodes == [0, 1]
    assert finding.evidence == {
        "port": "mlx5_1:1",
        "best": "mlx5_0:1",
        "busbw_gbps": {"mlx5_0:1": 20.0, "mlx5_1:1": 10.0},
    }
    assert "ibstat" in finding.fix and "export NCCL_IB_HCA=^=mlx5_1:1" in finding.fix


def test_ports_within_1_5x_are_quiet_and_a_failed_port_is_left_out_by_the_fix():
    assert (
        judge_sweep(
            [ib_result("mlx5_0:1", 12.0), ib_result("mlx5_1:1", 10.0)], None, "nccl", [0], "NCCL_IB_HCA"
        )
        == []
    )
    (failed,) = judge_sweep(
        [ib_result("mlx5_0:1", 12.0), ib_result("mlx5_1:1", None, "rank 1: exited with 1")],
        None,
        "nccl",
        [0],
        "NCCL_IB_HCA",
    )
    assert failed.code == "sweep_variant_failed" and "NCCL_IB_HCA=^=mlx5_1:1" in failed.fix


def test_the_section_says_which_variable_was_swept_and_carries_the_note():
    from nccldoctor.net.nic_sweep import report_sweep

    nodes = [ib_node(0), ib_node(1)]
    variants = iface_variants(["mlx5_0:1", "mlx5_1:1"], "NCCL_IB_HCA")
    outcomes = [
        VariantOutcome(v, rows(busbw), {}, 3.0) for v, busbw in zip(variants, (20.0, 8.0), strict=True)
    ]
    findings, section = report_sweep(
        variants, outcomes, None, "nccl", nodes, lambda ranks: [], variable="NCCL_IB_HCA"
    )
    assert [f.code for f in findings] == ["ib_port_slow"]
    assert (section["variable"], section["in_use"], section["note"]) == ("NCCL_IB_HCA", None, None)
    assert [r["line_rate_mbps"] for r in section["results"]] == [200_000, 200_000]
    assert section["results"][0]["setting"] == "NCCL_IB_HCA==mlx5_0:1"
    _, socket = report_sweep(iface_variants(["eth0"], "GLOO_SOCKET_IFNAME"), [], "eth0", "gloo", nodes, list)
    assert socket["variable"] == "GLOO_SOCKET_IFNAME" and socket["in_use"] == "eth0"


def test_rank_0_publishes_the_swept_variable_and_every_rank_builds_its_variants(monkeypatch):
    """The network phase's decision carries the plan through the store to every rank."""
    import json

    import torch.distributed as dist

    from nccldoctor.probes.network import NetworkCheck
    from nccldoctor.runtime import LaunchEnv

    def decide(env):
        for name in ("NCCL_IB_DISABLE", "NCCL_NET"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        store = dist.HashStore()
        for rank in (0, 1):
            store.set(f"net/node/{rank}", json.dumps(ib_node(rank).to_json()))
        launch = LaunchEnv(world_size=2, nnodes=2, master_addr="10.0.0.1")
        check = NetworkCheck(store, launch, parse_args([]).network, "nccl", lambda: 5.0, lambda step: None)
        check._decide_interfaces()
        return json.loads(store.get("net/decision"))

    on_ib = decide({})
    assert (on_ib["sweep"], on_ib["sweep_variable"]) == (["mlx5_0:1", "mlx5_1:1"], "NCCL_IB_HCA")
    first, _ = iface_variants(on_ib["sweep"], on_ib["sweep_variable"])
    assert first.env == {"NCCL_IB_HCA": "=mlx5_0:1"} and on_ib["in_use"] is None
    sockets = decide({"NCCL_IB_DISABLE": "1"})  # rank 0's environment, as its children inherit it
    assert (sockets["sweep"], sockets["sweep_variable"]) == (["eth0", "eth1"], "NCCL_SOCKET_IFNAME")


def test_the_view_flags_a_share_of_line_rate_above_100_percent():
    from nccldoctor.report import Report
    from nccldoctor.reports.sections.nic_sweep import nic_sweep_table

    def share(percent_of_line_rate):
        line = {"iface": "eth0", "in_use": True, "size_bytes": 1 << 20, "busbw_gbps": 1.3}
        line |= {"percent_of_line_rate": percent_of_line_rate, "line_rate_mbps": 10000}
        line |= {"latency_us": 40.0, "failed": None}
        sections = {"nic_sweep": {"backend": "gloo", "results": [line]}}
        table = nic_sweep_table(Report(job={}, environment={}, results=[], findings=[], sections=sections))
        return table["% of line rate"][0]

    assert share(104.2) == "104 (above 100%: noise, or a line rate reported below the link)"
    assert share(87.4) == "87" and share(None) == "-"
