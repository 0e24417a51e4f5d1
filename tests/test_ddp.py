"""The DDP benchmark's pure parts: model and data, the arithmetic of its report, the checks."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler

from nccldoctor.config import parse_args
from nccldoctor.errors import UsageError
from nccldoctor.probes.ddp import (
    SEED,
    DdpPlan,
    TimedAllReduce,
    batch_section,
    interpolate,
    judge_correctness,
    judge_sharding,
    percentile,
    plan_ddp,
    rank_seed,
    size_groups,
)
from nccldoctor.probes.ddp.checkpoint import judge_checkpoint, owners, read_back
from nccldoctor.probes.ddp.sharding import (
    RNG_DRAWS,
    SAMPLER_ITEMS,
    judge_rng,
    judge_sampler,
    rng_draws,
    sampler_items,
)
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


# -- sampler shards and RNG streams ---------------------------------------------------------


def shards(size, world, *, epoch=0, drop_last=False, rank_of=lambda r: r, replicas=None, seed=SEED):
    """Every rank's indices from a real DistributedSampler (given rank and replicas: no process
    group), built as a job that computed rank_of(r) and `replicas` would build it."""
    out = []
    for rank in range(world):
        sampler = DistributedSampler(
            range(size), num_replicas=replicas or world, rank=rank_of(rank), seed=seed, drop_last=drop_last
        )
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


def sampler_findings(size, world, drop_last=False, **kw):
    epochs = {
        0: shards(size, world, drop_last=drop_last, **kw),
        1: shards(size, world, epoch=1, drop_last=drop_last, **kw),
    }
    return judge_sampler(epochs, size, TwoNodes(), drop_last=drop_last)


@pytest.mark.parametrize(
    ("size", "world", "drop_last", "padded", "dropped"),
    [
        (10_001, 2, False, 1, 0),  # what the benchmark checks: one padded index
        (10_001, 4, False, 3, 0),  # padding on ranks 1, 2, 3
        (1_000, 4, False, 0, 0),  # divides: no padding
        (3, 8, False, 5, 0),  # fewer items than ranks: the order repeats, cyclically
        (10, 4, True, 0, 2),  # drop_last: the tail of the order is dropped
    ],
)
def test_healthy_shards_pass_with_the_padding_or_dropping_accounted_for(
    size, world, drop_last, padded, dropped
):
    findings, section = sampler_findings(size, world, drop_last)
    assert findings == [], [f.message for f in findings]
    assert (section["padded"], section["dropped"], section["verdict"]) == (padded, dropped, "ok")
    assert section["per_rank"] == len(shards(size, world, drop_last=drop_last)[0])
    assert section["order_changed"] and section["overlapping_ranks"] == [] and section["uncovered"] == []


def test_the_benchmarks_dataset_size_makes_the_sampler_pad_on_every_world_size():
    for world in (2, 3, 8, 64, 10_000, 20_000):
        size = sampler_items(world)
        assert size % world == 1 and size >= min(SAMPLER_ITEMS, world)
    assert sampler_items(1) == SAMPLER_ITEMS + 1


def test_ranks_sampling_as_their_local_rank_overlap_node_by_node():
    # Four ranks on two nodes that built the sampler with LOCAL_RANK and the global world size:
    # node 1 repeats node 0's shards, and half the data is on no rank.
    (finding,) = sampler_findings(100, 4, rank_of=lambda r: r % 2)[0]
    assert finding.code == "sampler_overlap" and finding.severity.value == "fail"
    assert "ranks 0 and 2 share 25 indices" in finding.message and "ranks 1 and 3 share 25" in finding.message
    assert "50 indices on no rank" in finding.message and "epochs 0, 1" in finding.message
    assert finding.ranks == [0, 1, 2, 3] and finding.nodes == [0, 1]
    # ... and with the per-node count too: everything covered twice, shards twice as long.
    (finding,) = sampler_findings(100, 4, rank_of=lambda r: r % 2, replicas=2)[0]
    assert "rank 0 has 50 indices, not 25" in finding.message and "ranks 0 and 2 share 50" in finding.message
    assert "on no rank" not in finding.message


def test_a_tiny_datasets_order_is_not_judged_as_it_may_repeat_by_chance():
    same = shards(3, 2)
    assert judge_sampler({0: same, 1: same}, 3, TwoNodes())[0] == []


def test_a_rank_whose_shard_duplicates_another_names_the_pair_and_the_gap():
    good = shards(10, 2)  # 5 each, no padding
    bad = [good[0], good[0][:4] + good[1][4:]]  # rank 1 holds four of rank 0's indices
    findings, section = judge_sampler({0: bad, 1: shards(10, 2, epoch=1)}, 10, TwoNodes())
    (finding,) = findings
    assert finding.ranks == [0, 1] and "ranks 0 and 1 share 4 indices" in finding.message
    assert "4 indices on no rank" in finding.message and "(epoch 0)" in finding.message
    assert section["overlapping_ranks"] == [[0, 1]] and section["uncovered"] == sorted(good[1][:4])
    assert section["verdict"] == "fail"


def test_an_index_on_no_rank_is_named_and_drop_last_may_drop_only_its_tail():
    good = shards(10, 2)
    gap = [good[0], [*good[1][:4], good[0][0]]]  # rank 1's last index swapped for rank 0's first
    (finding,) = judge_sampler({0: gap}, 10, TwoNodes())[0]
    assert "1 index on no rank: " + str(good[1][4]) in finding.message
    # drop_last over 11 items: 1 index may be missing, 2 may not.
    dropped = shards(11, 2, drop_last=True)
    assert judge_sampler({0: dropped}, 11, TwoNodes(), drop_last=True)[0] == []
    short = [dropped[0], [*dropped[1][:4], dropped[0][0]]]
    (finding,) = judge_sampler({0: short}, 11, TwoNodes(), drop_last=True)[0]
    assert "on no rank (drop_last may drop 1)" in finding.message


def test_only_the_samplers_own_padding_is_accepted_as_a_repeat():
    padded = shards(9, 2)  # 5 each: position 9 (rank 1's last slot) repeats position 0 (rank 0's first)
    assert padded[1][-1] == padded[0][0]
    assert judge_sampler({0: padded}, 9, TwoNodes())[0] == []
    # The same count of repeats, but of another index than the order's first: not padding.
    wrong = [padded[0], [*padded[1][:-1], padded[0][1]]]
    (finding,) = judge_sampler({0: wrong}, 9, TwoNodes())[0]
    assert "ranks 0 and 1 share 1 index" in finding.message and str(padded[0][1]) in finding.message
    # No padding when the size divides: a repeat of the first index is an overlap.
    even = shards(10, 2)
    repeat = [even[0], [*even[1][:-1], even[0][0]]]
    assert "share 1 index" in judge_sampler({0: repeat}, 10, TwoNodes())[0][0].message


def test_ranks_that_hold_an_index_twice_or_outside_the_dataset_are_named():
    (finding,) = judge_sampler({0: [[0, 0], [2, 7]]}, 4, TwoNodes())[0]
    assert "rank 0 holds 1 index (0)" in finding.message
    assert "indices outside the dataset: 7" in finding.message and "1, 3" in finding.message


def test_sampler_seeds_that_differ_per_rank_overlap():
    assert sampler_findings(1_001, 2, seed=SEED)[0] == []  # one seed everywhere: the baseline passes
    epochs = {0: [shards(1_001, 2, seed=SEED)[0], shards(1_001, 2, seed=SEED + 1)[1]]}
    (finding,) = judge_sampler(epochs, 1_001, TwoNodes())[0]
    assert "ranks 0 and 1 share" in finding.message and "on no rank" in finding.message


def test_a_sampler_whose_epoch_never_changes_is_named_with_the_set_epoch_fix():
    same = shards(1_001, 2)
    findings, section = judge_sampler({0: same, 1: same}, 1_001, TwoNodes())
    (finding,) = findings
    assert finding.code == "sampler_overlap" and finding.ranks == [0, 1]
    assert (
        "set_epoch(1) did not change the order of the shuffled shard on rank(s) 0, 1" in finding.message
        and "set_epoch" in finding.fix
    )
    assert section["order_changed"] is False and section["verdict"] == "fail"
    # One rank that forgot set_epoch: named alone, and it overlaps the others' epoch 1.
    findings = judge_sampler({0: same, 1: [shards(1_001, 2, epoch=1)[0], same[1]]}, 1_001, TwoNodes())[0]
    assert {f.ranks[0] for f in findings if "set_epoch" in f.message} == {1}
    assert any("share" in f.message for f in findings)
    # Without shuffle the order is not judged.
    assert judge_sampler({0: same, 1: same}, 1_001, TwoNodes(), shuffle=False)[0] == []


def test_identical_rng_streams_warn_naming_the_groups():
    findings, section = judge_rng([[1, 2], [3, 4], [1, 2], [5, 6]], TwoNodes())
    (finding,) = findings
    assert finding.code == "rng_identical" and finding.severity.value == "warn"
    assert finding.ranks == [0, 2] and finding.nodes == [0, 1] and "ranks 0, 2" in finding.message
    assert section == {"draws": 2, "identical": [[0, 2]], "verdict": "warn"}
    assert judge_rng([[1, 2], [3, 4]], TwoNodes()) == ([], {"draws": 2, "identical": [], "verdict": "ok"})


def test_rng_draws_follow_the_seed_and_leave_the_stream_where_it_was():
    torch.manual_seed(rank_seed(0))
    first = rng_draws()
    assert rng_draws() == first  # not consumed
    after = torch.randint(2**62, (RNG_DRAWS,)).tolist()
    assert after == first  # training starts the stream where the draws did
    torch.manual_seed(rank_seed(1))
    assert rng_draws() != first


def test_judge_sharding_reads_the_gathered_records():
    gathered = [
        {"size": 9, "shards": [shards(9, 2)[r], shards(9, 2, epoch=1)[r]], "rng": [r, r + 1]}
        for r in range(2)
    ]
    findings, section = judge_sharding(gathered, TwoNodes())
    assert findings == [] and section["per_rank"] == 5 and section["padded"] == 1
    assert section["rng"] == {"draws": 2, "identical": [], "verdict": "ok", "seed": "1234 + rank"}
    gathered[1]["rng"] = [0, 1]
    assert [f.code for f in judge_sharding(gathered, TwoNodes())[0]] == ["rng_identical"]


# -- the section's view ------------------------------------------------------------------------


def ddp_section(fraction=1.54, differing=(), sampler=None):
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
        **({"sampler": sampler} if sampler else {}),
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


def sampler_section(**changes):
    healthy = judge_sharding(
        [{"size": 9, "shards": [shards(9, 2)[r], shards(9, 2, epoch=1)[r]], "rng": [r]} for r in range(2)],
        TwoNodes(),
    )[1]
    return healthy | changes


def test_the_ddp_view_has_one_sampler_line_and_none_for_older_reports():
    line = ddp_cells(sampler=sampler_section())[0]["sampler shards"]
    assert line == (
        "9 items over 2 ranks, 5 each (1 padded): disjoint, complete, reordered by set_epoch; "
        "RNG streams differ per rank"
    )
    assert "sampler shards" not in ddp_cells()[0]  # saved before the check


def test_the_ddp_views_sampler_line_names_what_is_wrong():
    bad = sampler_section(
        overlapping_ranks=[[0, 2], [1, 3]],
        uncovered=[4, 9],
        order_changed=False,
        rng={"draws": 4, "identical": [[0, 1]], "verdict": "warn"},
    )
    line = ddp_cells(sampler=bad)[0]["sampler shards"]
    assert line.endswith(
        ": ranks 0 and 2 overlap; ranks 1 and 3 overlap; uncovered: 4, 9; set_epoch kept the order; "
        "RNG streams identical: ranks 0, 1"
    )
