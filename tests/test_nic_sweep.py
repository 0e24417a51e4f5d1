"""Planning and judging the per-NIC sweep (synthetic inventories and outcomes)."""

from rowmaker import make_row

from nccldoctor.config import parse_args
from nccldoctor.net.interfaces import Iface
from nccldoctor.net.inventory import NodeNet
from nccldoctor.net.judge import judge_interfaces
from nccldoctor.net.nic_sweep import NicResult, judge_sweep, plan_sweep, summarize
from nccldoctor.probes.nic_sweep import iface_variants, sweep_config
from nccldoctor.variants import Variant, VariantOutcome

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
    assert [v.env for v in iface_variants(["eth0"], "nccl")] == [{"NCCL_SOCKET_IFNAME": "=eth0"}]
    assert [v.env for v in iface_variants(["eth0"], "gloo")] == [{"GLOO_SOCKET_IFNAME": "eth0"}]


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

    variants = iface_variants(["eth0", "eth1"], "gloo")
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
