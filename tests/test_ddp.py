"""The DDP benchmark's pure parts: model and data, the arithmetic of its report, the checks."""

from pathlib import Path

import pytest
import torch

from nccldoctor.config import parse_args
from nccldoctor.errors import UsageError
from nccldoctor.probes.ddp import (
    DdpPlan,
    TimedAllReduce,
    batch_section,
    interpolate,
    judge_correctness,
    percentile,
    plan_ddp,
    size_groups,
)
from nccldoctor.probes.ddp.checkpoint import judge_checkpoint, owners, read_back
from nccldoctor.refmodel import MAX_STRIDE, PRESETS, Gpt, SyntheticTokens, chance_loss, gradient_bytes

TINY = PRESETS["tiny"]


class TwoNodes:
    """A Job stand-in: ranks 0,1 on node 0 and 2,3 on node 1."""

    world_size = 4

    def node_of(self, rank):
        return rank // 2

    def nodes_of(self, ranks):
        return sorted({r // 2 for r in ranks})


def test_synthetic_tokens_are_reproducible_arithmetic_sequences():
    data = SyntheticTokens(TINY, 100, seed=7)
    tokens, targets = data[3]
    assert torch.equal(tokens, SyntheticTokens(TINY, 100, seed=7)[3][0])
    assert not torch.equal(tokens, data[4][0])
    stride = int(targets[0] - tokens[0]) % TINY.vocab
    assert 1 <= stride <= MAX_STRIDE
    assert torch.equal(targets, (tokens + stride) % TINY.vocab)
    assert tokens.shape == (TINY.seq_len,)


def test_the_tiny_gpt_learns_the_task_on_one_process():
    torch.manual_seed(0)
    model = Gpt(TINY)
    optimizer = torch.optim.AdamW(model.parameters(), lr=TINY.lr)
    data = SyntheticTokens(TINY, 64, seed=1)
    batch = [torch.stack(t) for t in zip(*(data[i] for i in range(8)), strict=True)]
    with torch.no_grad():
        first = float(model(*batch))
    assert first == pytest.approx(chance_loss(TINY), rel=0.05)  # nothing learnt yet
    for _ in range(15):
        loss = model(*batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        assert float(model(*batch)) < first - 0.5
    assert gradient_bytes(model) == 4 * sum(p.numel() for p in model.parameters())  # tied head counted once


def test_the_gpt2_preset_has_about_125m_parameters():
    p = PRESETS["gpt2-125m"]
    per_block = 12 * p.dim**2 + 13 * p.dim  # qkv, proj, mlp weights and biases, two LayerNorms
    total = p.vocab * p.dim + p.seq_len * p.dim + p.layers * per_block + 2 * p.dim
    assert 120e6 < total < 130e6


def test_plan_picks_the_preset_by_device_and_rounds_steps_to_whole_windows():
    config = parse_args(["--ddp-steps", "7"]).ddp
    plan = plan_ddp(config, torch.device("cpu"))
    assert plan.preset_name == "tiny" and plan.steps == 10 and plan.batch == TINY.batch
    assert plan_ddp(config, torch.device("cuda", 0)).preset_name == "gpt2-125m"
    assert (
        plan_ddp(parse_args(["--ddp-model", "tiny", "--ddp-batch", "3"]).ddp, torch.device("cuda", 0)).batch
        == 3
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--ddp-only", "--no-ddp"], "contradict"),
        (["--ddp-model", "gpt5"], "unknown model 'gpt5'"),
        (["--ddp-bucket-mb", "0"], "--ddp-bucket-mb must be a positive"),
        (["--ddp-bucket-mb", "x"], "is not a number of MiB"),
        (["--ddp-accum", "0"], "--ddp-accum"),
        (["--ddp-only", "--sweep", "OMP_NUM_THREADS=1,2"], "drop --sweep"),
        (["--ddp-only", "--probes", "all_reduce"], "--ddp-only runs only the DDP benchmark: drop --probes"),
        (["--ddp-only", "--expect-busbw", "40", "--ifaces", "eth0"], "drop --expect-busbw, --ifaces"),
        (["--ddp-steps", "0"], "--ddp-steps must be 1 or more, not 0"),
    ],
)
def test_bad_ddp_flags_are_one_line_usage_errors(argv, expected):
    with pytest.raises(UsageError, match=expected):
        parse_args(argv)


def test_ddp_only_measures_nothing_else():
    config = parse_args(["--ddp-only"])
    assert config.collectives.probes == [] and not config.health.enabled and config.network.ifaces == "off"
    assert config.ddp.enabled and config.ddp.only


def test_global_batch_and_the_linear_scaling_hint():
    plan = DdpPlan("tiny", TINY, batch=8, accum=2, bucket_mb=25, steps=10)
    section = batch_section(plan, world=4)
    assert section["global"] == 64 and section["tokens_per_step"] == 64 * TINY.seq_len
    assert "64 = 8 per rank x 4 ranks x 2 accumulation" in section["lr_hint"]
    assert f"{TINY.lr * 8:.3g}" in section["lr_hint"]
    alone = batch_section(DdpPlan("tiny", TINY, batch=8, accum=1, bucket_mb=25, steps=10), world=1)
    assert alone["lr_hint"] is None  # the batch the lr was set for


def test_busbw_is_interpolated_in_log_size():
    points = [(1 << 10, 1.0), (1 << 20, 11.0)]
    assert interpolate(points, 1 << 15) == pytest.approx(6.0)
    assert interpolate(points, 1 << 10) == 1.0 and interpolate(points, 1 << 20) == 11.0


def test_buckets_of_about_one_size_share_a_measurement():
    assert size_groups([527872, 528896, 295936, 529408, 26214400]) == [
        [295936],
        [527872, 528896, 529408],
        [26214400],
    ]


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0 and percentile(values, 95) == 19.0


def test_all_reduce_busy_time_is_the_union_of_bucket_intervals():
    hook = TimedAllReduce(world_size=2, timed=True)
    hook.intervals = [(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]  # two overlapping buckets, then one more
    assert hook.busy_seconds() == pytest.approx(4.0)
    assert hook.intervals == []


def summaries(checksums, losses):
    return [{"rank": r, "checksums": c, "losses": losses} for r, c in enumerate(checksums)]


def test_equal_replicas_and_a_falling_loss_pass():
    findings, section = judge_correctness(
        summaries([[1.0, 2.0]] * 4, [6.0 - 0.1 * i for i in range(13)]), TwoNodes()
    )
    assert findings == [] and section["checksums_equal"] and section["loss_decreased"]


def test_a_rank_whose_parameters_differ_is_named_with_its_node():
    sums = [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.5]]
    (finding,) = judge_correctness(summaries(sums, [6.0 - 0.1 * i for i in range(13)]), TwoNodes())[0]
    assert finding.code == "ddp_divergence" and finding.ranks == [3] and finding.nodes == [1]
    assert finding.severity.value == "fail"


def test_a_loss_that_does_not_fall_is_a_divergence():
    (finding,) = judge_correctness(summaries([[1.0, 2.0]] * 4, [6.0] * 13), TwoNodes())[0]
    assert finding.code == "ddp_divergence" and "did not fall" in finding.message


# -- checkpoint --------------------------------------------------------------------------------


def test_shards_are_balanced_by_bytes():
    model = Gpt(TINY)
    owner = owners(model, 4)
    load = [0] * 4
    for name, p in model.named_parameters():
        load[owner[name]] += p.numel()
    assert max(load) < 1.2 * min(load) + max(p.numel() for p in model.parameters())
    assert set(owner.values()) == {0, 1, 2, 3}


def test_only_files_that_were_written_can_be_missed(tmp_path):
    shards = [{"rank": 0, "file": "shard-00000.pt", "write_error": None}]
    assert read_back(tmp_path, shards, rank=1, manifest_written=False)["missing"] == ["shard-00000.pt"]
    seen = read_back(tmp_path, shards, rank=1, manifest_written=True)["missing"]
    assert seen == ["manifest.json", "COMPLETE", "shard-00000.pt"]
    failed = [{"rank": 0, "file": "shard-00000.pt", "write_error": "OSError: read-only"}]
    assert read_back(tmp_path, failed, rank=1, manifest_written=False)["missing"] == []


def record(rank, missing=(), corrupt=(), write_error=None):
    return {
        "rank": rank,
        "file": f"shard-{rank:05d}.pt",
        "bytes": 1000,
        "write_s": 0.001,
        "read_bytes": 3000,
        "read_s": 0.001,
        "missing": list(missing),
        "corrupt": list(corrupt),
        "write_error": write_error,
    }


def test_node_local_directories_are_fs_inconsistent_naming_who_cannot_see_what():
    node0 = ["shard-00002.pt", "shard-00003.pt"]
    node1 = ["manifest.json", "COMPLETE", "shard-00000.pt", "shard-00001.pt"]
    records = [record(0, node0), record(1, node0), record(2, node1), record(3, node1)]
    findings, section = judge_checkpoint(records, Path("/scratch/ckpt"), TwoNodes())
    (finding,) = findings
    assert finding.code == "fs_inconsistent" and finding.ranks == [0, 1, 2, 3] and finding.nodes == [0, 1]
    assert "/scratch/ckpt" in finding.message and "could not be loaded" in finding.message
    assert finding.evidence["missing"][2] == node1
    assert not section["ok"] and section["ranks"][0]["write_mb_s"] == pytest.approx(1.0)


def test_a_shared_directory_passes_and_a_bad_shard_is_ckpt_failed():
    assert judge_checkpoint([record(r) for r in range(4)], Path("/x"), TwoNodes())[0] == []
    records = [
        record(0),
        record(1, corrupt=["shard-00002.pt"]),
        record(2, write_error="OSError: full"),
        record(3),
    ]
    (finding,) = judge_checkpoint(records, Path("/x"), TwoNodes())[0]
    assert finding.code == "ckpt_failed" and finding.ranks == [1, 2] and "OSError: full" in finding.message


# -- the section's view ------------------------------------------------------------------------


def ddp_section(fraction=1.54, differing=()):
    bucket = {"bytes": 1882112, "busbw_gbps": 0.74, "source": "measured at 1.79 MiB", "predicted_ms": 2.56}
    return {
        "model": {"preset": "tiny", "parameters": 470528, "precision": "fp32"},
        "batch": {"per_rank": 8, "ranks": 2, "accumulation": 1, "global": 16, "lr_hint": None},
        "throughput": {
            "samples_per_s": 416.0,
            "tokens_per_s": 26623.0,
            "step_p50_ms": 37.5,
            "step_p95_ms": 43.8,
        },
        "communication": {
            "gradient_bytes": 1882112,
            "buckets": [bucket],
            "synced_fb_ms": 34.3,
            "no_sync_fb_ms": 31.4,
            "exposed_ms": 2.9,
            "share_of_step": 0.08,
            "predicted_allreduce_ms": 2.56,
            "ddp_allreduce_ms": 1.66,
            "fraction_of_probe_bandwidth": fraction,
            "hidden_by_overlap": 0.0,
        },
        "correctness": {
            "checksums_equal": not differing,
            "differing_ranks": list(differing),
            "loss_first": 6.15,
            "loss_last": 5.15,
        },
        "checkpoint": {
            "dir": "/tmp/ck",
            "ranks": [
                {"rank": 0, "node": 0, "bytes": 941056, "write_mb_s": 80.0, "read_mb_s": 90.0}
                | {"write_error": None, "missing": [], "corrupt": []}
            ],
        },
    }


def ddp_cells(**kw):
    from nccldoctor.report import Report
    from nccldoctor.reports.sections.ddp import checkpoint_table, ddp_table

    report = Report(job={}, environment={}, results=[], findings=[], sections={"ddp": ddp_section(**kw)})
    return dict(ddp_table(report).itertuples(index=False)), checkpoint_table(report)


def test_the_ddp_view_says_the_prediction_uses_algbw_and_writes_bytes_in_human_units():
    cells, checkpoint = ddp_cells()
    # DDP waits bytes / algbw for a bucket: the label says so, not "at busbw".
    (label,) = [name for name in cells if name.startswith("all-reduce predicted")]
    assert "algbw" in label and "busbw" not in label
    assert cells[label] == "2.56 ms (all_reduce measured at 1.79 MiB)"
    assert cells["gradients per step"] == "1.79 MiB in 1 bucket"
    assert list(checkpoint["shard"]) == ["919 KiB"]


def test_the_ddp_view_writes_an_older_reports_source_in_human_units_too():
    from nccldoctor.reports.sections.ddp import _sources

    old = {"buckets": [{"busbw_gbps": 0.7, "source": "measured at 1882112 B"}]}
    assert _sources(old) == " (all_reduce measured at 1.79 MiB)"


def test_the_ddp_view_flags_a_bandwidth_ratio_above_100_percent_as_noise():
    assert ddp_cells(fraction=1.54)[0]["DDP / all_reduce bandwidth"] == "154% (above 100%: measurement noise)"
    assert ddp_cells(fraction=0.52)[0]["DDP / all_reduce bandwidth"] == "52%"
    assert ddp_cells(fraction=1.004)[0]["DDP / all_reduce bandwidth"] == "100%"  # rounds to 100%


def test_the_ddp_view_lists_differing_ranks_in_words():
    assert ddp_cells(differing=[1, 3])[0]["replicas identical"] == "no: ranks 1, 3"
