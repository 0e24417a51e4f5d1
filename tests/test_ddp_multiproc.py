"""The DDP benchmark inside the real bench under torchrun --standalone (Gloo ranks)."""

import pytest
from conftest import torchrun

from nccldoctor.units import format_bytes

pytestmark = pytest.mark.multiproc
DDP_ONLY = ["--ddp-only", "--timeout", "120", "--no-html"]  # report.html has tests of its own


@pytest.mark.parametrize("nproc", [2, 4])
def test_ddp_trains_with_identical_replicas_and_a_shared_checkpoint_round_trips(nproc, out_dir, tmp_path):
    # Half-MB buckets: the 1.9 MB of gradients travel in several, all of them accounted for.
    run = torchrun(
        nproc, [*DDP_ONLY, "--ddp-bucket-mb", "0.5", "--ckpt-dir", str(tmp_path / "ckpt")], out_dir
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = run.report
    assert report["verdict"] == "pass" and report["findings"] == [] and report["results"] == []
    ddp = report["ddp"]
    assert ddp["throughput"]["tokens_per_s"] > 0 and ddp["throughput"]["samples_per_s"] > 0
    assert ddp["batch"]["global"] == 8 * nproc and ddp["model"]["preset"] == "tiny"
    assert (ddp["model"]["precision"], ddp["model"]["dtype"]) == ("fp32", "float32")  # CPU: no autocast
    correctness = ddp["correctness"]
    assert correctness["checksums_equal"] and correctness["loss_last"] < correctness["loss_first"]
    comm = ddp["communication"]
    assert comm["gradient_bytes"] == sum(b["bytes"] for b in comm["buckets"])  # every gradient, once
    assert len(comm["buckets"]) >= 3 and max(b["bytes"] for b in comm["buckets"]) <= 0.6 * 2**20
    assert comm["predicted_allreduce_ms"] > 0 and comm["ddp_allreduce_ms"] > 0
    assert [r["rank"] for r in ddp["ranks"]] == list(range(nproc))
    sampler = ddp["sampler"]  # 10,001 items: every rank but rank 0 gets one padded index
    assert sampler["verdict"] == "ok" and sampler["world"] == nproc and sampler["padded"] == nproc - 1
    assert sampler["order_changed"] and sampler["rng"]["identical"] == []
    checkpoint = ddp["checkpoint"]
    assert checkpoint["ok"] and all(r["read_mb_s"] and not r["missing"] for r in checkpoint["ranks"])
    assert list((tmp_path / "ckpt").iterdir()) == []  # cleaned up
    assert "DDP reference training benchmark" in run.stdout
    markdown = (out_dir / "report.md").read_text()
    assert "## DDP reference training benchmark" in markdown and "## Checkpoint round trip" in markdown


def test_a_rank_whose_replica_drifts_is_named_by_ddp_divergence(out_dir):
    run = torchrun(2, DDP_ONLY, out_dir, fault=["perturb-params", "1", "-"])
    (finding,) = [f for f in run.report["findings"] if f["code"] == "ddp_divergence"]
    assert finding["ranks"] == [1] and finding["nodes"] == [0], finding
    assert run.report["verdict"] == "fail" and run.rank_exit_codes() == {0: 1, 1: 1}


def test_a_rank_that_samples_and_seeds_as_rank_0_is_named_by_sampler_overlap_and_rng_identical(out_dir):
    run = torchrun(2, DDP_ONLY, out_dir, fault=["rank-zero-data", "1", "-"])
    found = {f["code"]: f for f in run.report["findings"]}
    assert set(found) == {"sampler_overlap", "rng_identical"}, run.report["findings"]
    overlap, rng = found["sampler_overlap"], found["rng_identical"]
    assert overlap["ranks"] == [0, 1] and "ranks 0 and 1 share 5001 indices" in overlap["message"]
    assert "5000 indices on no rank" in overlap["message"] and rng["ranks"] == [0, 1]
    sampler = run.report["ddp"]["sampler"]
    assert sampler["verdict"] == "fail" and sampler["overlapping_ranks"] == [[0, 1]]
    assert sampler["rng"]["identical"] == [[0, 1]] and sampler["rng"]["verdict"] == "warn"
    assert run.report["ddp"]["correctness"]["checksums_equal"]  # the averaging itself is right
    assert run.report["verdict"] == "fail" and run.rank_exit_codes() == {0: 1, 1: 1}


def test_the_default_run_includes_the_ddp_benchmark_after_the_probes(out_dir):
    run = torchrun(
        2, ["-e", "1M", "-n", "3", "-w", "1", "--probes", "all_reduce", "--health", "off"], out_dir
    )
    assert run.returncode == 0, run.stderr[-3000:]
    comm = run.report["ddp"]["communication"]
    # The 1.79 MiB bucket lies past the probes' 1M: measured at its own size.
    assert [b["source"] for b in comm["buckets"]] == [f"measured at {format_bytes(comm['gradient_bytes'])}"]
    run = torchrun(
        2, ["-e", "4M", "-n", "3", "-w", "1", "--probes", "all_reduce", "--health", "off"], out_dir
    )
    comm = run.report["ddp"]["communication"]
    assert [b["source"] for b in comm["buckets"]] == ["probes (interpolated)"]
