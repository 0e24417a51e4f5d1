"""--expect FILE: the TOML file's validation (one line: file, line, key), each rule kind judged
on a recorded report (a pass and a miss, the finding citing its rule), rules a run did not
measure, the straggler thresholds re-judged by the health phase's own judge, and the examples.

The report fixture (tests/fixtures/expectations/two_nodes_report.json) is a real run: 2 emulated
nodes x 2 Gloo ranks on this machine, every probe, health and DDP on (all_reduce peaked at
0.675 GB/s at 8M, 963 us at 8 B; node pair 0 -> 1 1.25 GB/s, 1 -> 0 1.75 GB/s).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from nccldoctor.config import GateOptions
from nccldoctor.errors import UsageError
from nccldoctor.findings import Severity
from nccldoctor.gate import file_problem, review
from nccldoctor.gate.expectations import load, parse
from nccldoctor.gate.judging import judge_report
from nccldoctor.gate.toml_lines import key_lines
from nccldoctor.report import Report
from nccldoctor.reports.sections import section_tables

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "expectations" / "two_nodes_report.json"
HEALTH_FIXTURE = FIXTURE.with_name("two_nodes_health_report.json")
EXAMPLES = sorted((ROOT / "examples" / "expectations").glob("*.toml"))


def bad(text: str) -> str:
    with pytest.raises(UsageError) as info:
        parse(text, "expect.toml")
    message = str(info.value)
    assert "\n" not in message
    return message


# -- validation ----------------------------------------------------------------------------------
def test_a_toml_syntax_error_names_the_file_and_line():
    message = bad("[probes.all_reduce]\nmin_busbw_gbps = 3\nmax_latency_us = fast\n")
    assert message.startswith("--expect expect.toml:3: not valid TOML: ")
    assert "line 3" in message


def test_an_unknown_key_is_named_with_its_line_and_the_known_keys():
    message = bad('description = "x"\n\n[probes.all_reduce]\nmin_busbw_gbps = 3\nmin_busbw = 4\n')
    assert message.startswith("--expect expect.toml:5: probes.all_reduce.min_busbw: unknown key")
    assert "min_busbw_gbps, max_latency_us, min_share_of_line_rate, at" in message


def test_an_unknown_dotted_key_and_table_are_found_on_their_lines():
    assert bad("[job]\nnodes = 2\n\nlinks.min_ring = 3\n").startswith(
        "--expect expect.toml:4: job.links: unknown key"
    )
    assert bad('description = "a"\n[ddp]\nmin_tokens_per_s = 1\n[dpp]\nx = 1\n').startswith(
        "--expect expect.toml:4: dpp: unknown key (known at the top: description, job, probes"
    )


def test_a_wrong_type_is_named_with_the_value():
    message = bad('[probes.all_reduce]\nmin_busbw_gbps = "fast"\n')
    assert message == (
        "--expect expect.toml:2: probes.all_reduce.min_busbw_gbps: must be a number (GB/s), got 'fast'"
    )
    assert "must be a whole number, got True" in bad("[job]\nnodes = true\n")
    assert "must be a whole number, got 2.5" in bad("[job]\ngpus_per_node = 2.5\n")
    assert "must be a table" in bad("probes = 3\n")


def test_a_negative_or_out_of_range_bound_is_refused():
    assert bad("[probes.all_gather]\nmax_latency_us = -3\n") == (
        "--expect expect.toml:2: probes.all_gather.max_latency_us: must be above 0 us, got -3"
    )
    assert "must be above 0 and at most 1, got 70" in bad(
        "[probes.all_reduce]\nmin_share_of_line_rate = 70\n"
    )
    assert bad("[stragglers]\nwarn_score = 0.8\nfail_score = 0.85\n").startswith(
        "--expect expect.toml:3: stragglers.fail_score: must be below warn_score (0.8)"
    )


def test_an_unknown_probe_or_size_is_refused():
    message = bad("\n[probes.all_reduc]\nmin_busbw_gbps = 3\n")
    assert message.startswith(
        "--expect expect.toml:2: probes.all_reduc: unknown probe 'all_reduc' (known: all_reduce"
    )
    message = bad('[probes.all_reduce.at."8Q"]\nmin_busbw_gbps = 3\n')
    assert message.startswith("--expect expect.toml:1: probes.all_reduce.at.8Q: '8Q' is not a size")


def test_an_inline_table_key_is_found_on_its_line():
    message = bad(
        '[probes]\nall_reduce = { min_busbw_gbps = 3 }\n\nsendrecv = { at = { "1M" = { p = 1 } } }\n'
    )
    assert message.startswith("--expect expect.toml:4: probes.sendrecv.at.1M.p: unknown key")


def test_an_empty_or_missing_file_is_one_line(tmp_path):
    assert (
        bad("# nothing yet\n")
        == "--expect expect.toml: holds no expectations (examples: examples/expectations/)"
    )
    with pytest.raises(UsageError, match=r"^--expect .*nope\.toml: no such file$"):
        load(tmp_path / "nope.toml")
    with pytest.raises(UsageError, match="is a directory"):
        load(tmp_path)


def test_file_problem_returns_the_line_and_none_for_a_good_file(tmp_path):
    path = tmp_path / "expect.toml"
    path.write_text("[job]\nnodes = 0\n")
    problem = file_problem(GateOptions(expect=path))
    assert problem == f"--expect {path}:2: job.nodes: must be at least 1, got 0"
    path.write_text("[job]\nnodes = 2\n")
    assert file_problem(GateOptions(expect=path)) is None
    assert file_problem(GateOptions()) is None


def test_key_lines_walks_strings_arrays_and_tables_like_a_parser():
    text = (
        "# a = 1\n"
        'description = """\n'
        "[job]\n"
        'nodes = 3"""\n'
        "[probes.'all_reduce']\n"
        "arr = [1,\n"
        "  2, # ] not the end\n"
        "  3]\n"
        'at."8M".max_latency_us = 4\n'
        "[[x.y]]\n"
        "z = 1\n"
    )
    lines = key_lines(text)
    assert ("job",) not in lines  # inside a multi-line string
    assert lines[("probes", "all_reduce")] == 5
    assert lines[("probes", "all_reduce", "arr")] == 6
    assert lines[("probes", "all_reduce", "at", "8M", "max_latency_us")] == 9
    assert lines[("x", "y", "z")] == 11


# -- judging on a recorded report ------------------------------------------------------------------
def fresh() -> Report:
    return Report.from_dict(json.loads(FIXTURE.read_text()))


@pytest.fixture
def report() -> Report:
    return fresh()


def judged(report: Report, toml: str) -> tuple[Report, list[dict]]:
    judge_report(parse(toml, "expect.toml"), report)
    return report, report.sections["expectations"]["rules"]


def codes(report: Report, code: str) -> list:
    return [f for f in report.findings if f.code == code]


def test_busbw_at_the_largest_size_passes_and_misses_with_the_rule_cited(report):
    report, rules = judged(report, "[probes.all_reduce]\nmin_busbw_gbps = 0.5\n")
    assert rules == [
        {
            "key": "probes.all_reduce.min_busbw_gbps",
            "line": 2,
            "bound": 0.5,
            "measured": pytest.approx(0.675, abs=1e-3),
            "ok": True,
            "note": "at 8M",
        }
    ]
    assert codes(report, "low_bandwidth") == []
    report, rules = judged(fresh(), "\n[probes.all_reduce]\nmin_busbw_gbps = 1\n")
    (finding,) = codes(report, "low_bandwidth")
    assert finding.severity is Severity.FAIL and finding.nodes == [] and finding.ranks == []
    assert finding.evidence["rule"] == {
        "file": "expect.toml",
        "key": "probes.all_reduce.min_busbw_gbps",
        "line": 3,
        "bound": 1,
    }
    assert finding.evidence["measured"] == pytest.approx(0.675, abs=1e-3)
    assert finding.message == (
        "all_reduce busbw 0.675 GB/s at 8M is below the 1 GB/s this cluster expects "
        "(expect.toml:3 probes.all_reduce.min_busbw_gbps)"
    )
    assert rules[0]["ok"] is False
    assert report.sections["speed"]["note"] == "judged against expect.toml for all_reduce"


def test_busbw_and_latency_at_a_named_size(report):
    toml = '[probes.all_reduce.at."2M"]\nmin_busbw_gbps = 0.5\n'
    toml += '[probes.all_reduce.at."32K"]\nmax_latency_us = 1e6\n'
    report, rules = judged(report, toml)
    assert [(r["key"], r["ok"], r["note"]) for r in rules] == [
        ("probes.all_reduce.at.2M.min_busbw_gbps", False, "at 2M"),
        ("probes.all_reduce.at.32K.max_latency_us", True, "at 32K"),
    ]
    (finding,) = codes(report, "low_bandwidth")
    assert finding.evidence["size_bytes"] == 2 << 20 and finding.evidence["rule"]["line"] == 2


def test_latency_at_the_smallest_size_is_high_latency(report):
    report, rules = judged(report, "[probes.all_reduce]\nmax_latency_us = 500\n")
    (finding,) = codes(report, "high_latency")
    assert finding.message == (
        "all_reduce took 963 us at 8 B, above the 500 us this cluster expects "
        "(expect.toml:2 probes.all_reduce.max_latency_us)"
    )
    assert finding.evidence["rule"]["key"] == "probes.all_reduce.max_latency_us"
    assert finding.evidence["measured"] == pytest.approx(963.0, abs=1)
    assert finding.severity is Severity.FAIL
    report, rules = judged(fresh(), "[probes.all_reduce]\nmax_latency_us = 2000\n")
    assert rules[0]["ok"] is True and codes(report, "high_latency") == []


def test_share_of_line_rate(report):
    toml = "[probes.all_reduce]\nmin_share_of_line_rate = 0.5\n"
    toml += "[probes.reduce_scatter]\nmin_share_of_line_rate = 0.5\n"
    report, rules = judged(report, toml)
    assert [r["ok"] for r in rules] == [True, False]  # 54% and 20% of the 10 Gb/s fast0
    (finding,) = codes(report, "low_bandwidth")
    assert finding.evidence["rule"]["key"] == "probes.reduce_scatter.min_share_of_line_rate"
    assert "is 20% of the 10 Gb/s line rate (fast0), below the 50% this cluster expects" in finding.message


def test_node_pair_and_ring_links_name_their_nodes(report):
    toml = "[links]\nmin_node_pair_gbps = 1.5\nmin_ring_inter_gbps = 0.5\nmin_ring_intra_gbps = 0.9\n"
    report, rules = judged(report, toml)
    assert [(r["key"], r["ok"]) for r in rules] == [
        ("links.min_node_pair_gbps", False),  # 0 -> 1 ran at 1.25 GB/s
        ("links.min_ring_inter_gbps", True),
        ("links.min_ring_intra_gbps", False),  # rank 2 -> 3 (node 1) ran at 0.845 GB/s
    ]
    pair, ring = codes(report, "slow_link")
    assert pair.nodes == [0, 1] and pair.severity is Severity.FAIL
    assert pair.evidence["rule"]["key"] == "links.min_node_pair_gbps" and pair.evidence["rule"]["line"] == 2
    assert [(link["src_node"], link["dst_node"]) for link in pair.evidence["slow_links"]] == [(0, 1)]
    assert ring.nodes == [1] and ring.ranks == [2, 3]
    assert "rank 2 -> rank 3, node 1 (node1-7693a4) -> node 1 (node1-7693a4) 0.845 GB/s" in ring.message


def test_job_shape_nodes_gpus_and_nics(report):
    _, rules = judged(report, "[job]\nnodes = 2\ngpus_per_node = 0\nnics_per_node = 2\n")
    assert [r["ok"] for r in rules] == [True, True, True]
    odd = fresh()
    odd.sections["consistency"]["nodes"][1]["gpus_visible"] = 7
    slow0 = odd.sections["network"]["nodes"][1]["interfaces"][3]
    assert slow0["name"] == "slow0"
    slow0["up"] = False
    odd, rules = judged(odd, "[job]\nnodes = 3\ngpus_per_node = 8\nnics_per_node = 2\n")
    assert [r["ok"] for r in rules] == [False, False, False]
    (nodes,) = codes(odd, "node_count_mismatch")
    assert nodes.nodes == [] and nodes.evidence["measured"] == 2 and nodes.evidence["rule"]["line"] == 2
    (gpus,) = codes(odd, "gpu_count_mismatch")
    assert gpus.nodes == [0, 1] and gpus.evidence["per_node"] == {"0": 0, "1": 7}
    (nics,) = codes(odd, "nic_count_mismatch")
    assert nics.nodes == [1] and nics.evidence["rule"]["key"] == "job.nics_per_node"
    assert nics.message.startswith("node 1 (node1-7693a4) has 1 active NIC(s)")


def test_infiniband_ports_are_the_nics_when_a_node_has_any():
    from nccldoctor.gate.judging import nic_count

    port = {"device": "mlx5_0", "port": 1, "state": "ACTIVE", "rate": "400 Gb/sec (4X NDR)"}
    port |= {"rate_gbps": 400.0, "link_layer": "InfiniBand"}
    ports = [port | {"device": f"mlx5_{i}"} for i in range(8)]
    ports[5] = ports[5] | {"state": "DOWN"}
    eth = {"name": "eth0", "addresses": ["10.0.0.1/24"], "up": True, "mtu": 1500, "speed_mbps": 25000}
    assert nic_count({"ib_ports": ports, "interfaces": [eth]}) == 7
    assert nic_count({"ib_ports": [], "interfaces": [eth, eth | {"name": "docker0"}]}) == 1


def test_ddp_tokens_per_second(report):
    report, rules = judged(report, "[ddp]\nmin_tokens_per_s = 20000\n")
    (finding,) = codes(report, "low_ddp_throughput")
    assert finding.nodes == [] and finding.evidence["rule"]["bound"] == 20000
    assert "trained 14003 tokens/s, below the 20000 tokens/s" in finding.message
    report, rules = judged(fresh(), "[ddp]\nmin_tokens_per_s = 10000\n")
    assert rules[0]["ok"] is True and rules[0]["measured"] == pytest.approx(14002.8, abs=0.1)


def test_rules_for_what_the_run_did_not_measure_are_not_checked_never_passed(report):
    del report.sections["ddp"], report.sections["stragglers"]
    report.results = [r for r in report.results if r.probe != "sendrecv"]
    toml = (
        "[probes.sendrecv]\nmin_busbw_gbps = 0.1\n[probes.all_reduce.at.1G]\nmin_busbw_gbps = 0.1\n"
        "[ddp]\nmin_tokens_per_s = 1\n[links]\nmin_ring_gbps = 0.1\n[stragglers]\nwarn_score = 0.8\n"
    )
    report, rules = judged(report, toml)
    assert [r["ok"] for r in rules] == [None] * 5
    (finding,) = codes(report, "expectation_not_checked")
    assert finding.severity is Severity.INFO
    why = {r["key"]: r["why"] for r in finding.evidence["rules"]}
    assert why == {
        "probes.sendrecv.min_busbw_gbps": "sendrecv was not measured in this run (--probes)",
        "probes.all_reduce.at.1G.min_busbw_gbps": "1G was not measured (sizes 8 to 8M); widen -b/-e",
        "ddp.min_tokens_per_s": "the DDP benchmark did not run (--no-ddp)",
        "links.min_ring_gbps": "links were not measured (--health off)",
        "stragglers.warn_score": "ranks were not scored (--health off)",
    }
    assert report.verdict == "pass"


def test_share_of_line_rate_on_one_node_is_not_checked(report):
    report.sections["speed"]["line_rate"] = None
    report, rules = judged(report, "[probes.all_reduce]\nmin_share_of_line_rate = 0.1\n")
    assert rules[0]["ok"] is None and "one-node run" in rules[0]["note"]


# -- stragglers: the health phase's judge with the file's thresholds -------------------------------
def straggler_report(report: Report) -> Report:
    """The fixture with a stragglers section made by the health phase's own functions: 4 CPU
    ranks on 2 nodes, rank 3's best step 15% slower than the others' (score 0.87)."""
    from nccldoctor.probes.health.compute import ComputePlan, RankCompute
    from nccldoctor.probes.health.stragglers import (
        SCORED_ON_CPU,
        ScoreThresholds,
        judge_stragglers,
        judging_inputs,
        rank_rows,
        score_ranks,
    )

    best = [0.100, 0.100, 0.100, 0.115]
    computes = [RankCompute(0.01, 0.01, None, None, 0.105, 0.02, b) for b in best]
    node_of = [0, 0, 1, 1]
    verdicts = score_ranks(computes, node_of, SCORED_ON_CPU)
    thresholds = ScoreThresholds()
    hostnames = {0: "node0-7693a4", 1: "node1-7693a4"}
    plan = ComputePlan(128, 10, 1 << 20, 10, None)
    section = {
        "thresholds": dataclasses.asdict(thresholds),
        "ranks": rank_rows(verdicts, computes, plan, None, hostnames),
        "ring": report.sections["stragglers"]["ring"],
        "node_pairs": report.sections["stragglers"]["node_pairs"],
        "judging": judging_inputs(computes, {}, {}),
    }
    report.sections["stragglers"] = json.loads(json.dumps(section))  # as report.json holds it
    report.findings = judge_stragglers(verdicts, computes, thresholds, hostnames)
    return report


def test_the_run_flagged_rank_3_at_the_default_thresholds(report):
    report = straggler_report(report)
    (finding,) = report.findings
    assert (finding.code, finding.ranks, finding.severity) == ("straggler_rank", [3], Severity.WARN)


def test_the_runs_own_thresholds_give_the_runs_own_findings(report):
    from nccldoctor.probes.health.stragglers import ScoreThresholds, rejudge

    report = straggler_report(report)
    again = rejudge(report.sections["stragglers"], ScoreThresholds(), {0: "node0-7693a4", 1: "node1-7693a4"})
    assert [f.to_dict() for f in again] == [f.to_dict() for f in report.findings]


def test_a_looser_warn_score_clears_the_straggler(report):
    report, rules = judged(straggler_report(report), "[stragglers]\nwarn_score = 0.85\n")
    assert codes(report, "straggler_rank") == [] and report.verdict == "pass"
    assert rules == [
        {
            "key": "stragglers.warn_score",
            "line": 2,
            "bound": 0.85,
            "measured": pytest.approx(0.8696, abs=1e-3),
            "ok": True,
            "note": "the lowest rank score",
        }
    ]


def test_a_stricter_fail_score_fails_the_straggler_citing_that_rule(report):
    report, rules = judged(straggler_report(report), "[stragglers]\nwarn_score = 0.95\nfail_score = 0.9\n")
    (finding,) = report.findings
    assert (finding.code, finding.ranks, finding.nodes) == ("straggler_rank", [3], [1])
    assert finding.severity is Severity.FAIL
    assert finding.evidence["rule"] == {
        "file": "expect.toml",
        "key": "stragglers.fail_score",
        "line": 3,
        "bound": 0.9,
    }
    assert finding.evidence["thresholds"] == {"warn": 0.95, "fail": 0.9}
    assert finding.message.endswith("(expect.toml:3 stragglers.fail_score)")
    assert [(r["key"], r["ok"]) for r in rules] == [
        ("stragglers.warn_score", False),
        ("stragglers.fail_score", False),
    ]


def test_a_report_without_the_scores_inputs_is_not_checked(report):
    report.findings = []
    report, rules = judged(report, "[stragglers]\nwarn_score = 0.99\n")
    assert rules[0]["ok"] is None and codes(report, "straggler_rank") == []


# -- the hooks, the view, the examples -------------------------------------------------------------
def test_review_judges_with_the_file_file_problem_read(report, tmp_path):
    path = tmp_path / "expect.toml"
    path.write_text("[probes.all_reduce]\nmin_busbw_gbps = 1\n")
    options = GateOptions(expect=path)
    assert file_problem(options) is None
    path.write_text("garbage = [")  # read once, before measuring: the checked rules are judged
    reviewed = review(report, options)
    assert [f.code for f in reviewed.findings] == ["low_bandwidth"] and reviewed.exit_code == 1
    assert reviewed.to_dict()["expectations"]["file"] == str(path)


def test_the_view_lists_passes_misses_and_unchecked_rules(report):
    toml = "[probes.all_reduce]\nmin_busbw_gbps = 1\nmax_latency_us = 2000\n[ddp]\nmin_tokens_per_s = 1\n"
    del report.sections["ddp"]
    report, _ = judged(report, toml)
    (title, frame), *_ = section_tables(report)
    assert title == "Expectations (expect.toml): 1 met, 1 missed, 1 not checked"
    assert frame["result"].tolist() == ["FAIL", "ok", "not checked"]
    assert frame["where"].tolist() == ["expect.toml:2", "expect.toml:3", "expect.toml:5"]


def test_the_examples_exist_for_each_shape():
    names = {path.name for path in EXAMPLES}
    assert {"h100-8x400g-ib.toml", "a100-4x200g-hdr.toml", "cpu-emulated-cluster.toml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads_and_cites_its_sources(path):
    expectations = load(path)
    assert expectations.description and len(expectations.rules) >= 5
    text = path.read_text()
    if "cpu" not in path.name:
        assert text.count("https://") >= 3, "the GPU examples cite where their numbers come from"


@pytest.mark.parametrize("fixture", [FIXTURE, HEALTH_FIXTURE], ids=["first", "second"])
def test_the_cpu_example_passes_on_both_recorded_emulated_cluster_runs(fixture):
    cpu = next(p for p in EXAMPLES if p.name == "cpu-emulated-cluster.toml")
    report = judge_report(load(cpu), Report.from_dict(json.loads(fixture.read_text())))
    rules = report.sections["expectations"]["rules"]
    assert [r["key"] for r in rules if r["ok"] is not True] == (
        ["stragglers.warn_score", "stragglers.fail_score"] if fixture == FIXTURE else []
    )  # the first run's report predates the scores' inputs: not checked
    assert report.verdict == "pass"


def test_a_real_report_keeps_what_re_judging_the_stragglers_needs():
    """The second fixture is this branch's bench (2 x 2 emulated, defaults): its stragglers
    section keeps every rank's seconds, and re-judging with its own thresholds gives its own
    straggler findings."""
    from nccldoctor.probes.health.stragglers import ScoreThresholds, rejudge

    report = Report.from_dict(json.loads(HEALTH_FIXTURE.read_text()))
    section = report.sections["stragglers"]
    assert len(section["judging"]["computes"]) == 4 and set(section["judging"]["cpu_pressure"]) == {"0", "1"}
    thresholds = ScoreThresholds(**section["thresholds"])
    again = rejudge(section, thresholds, {0: "node0", 1: "node1"})
    assert [f.code for f in again] == [f.code for f in report.findings if f.code.startswith("straggler")]
