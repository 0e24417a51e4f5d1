"""The DDP benchmark's checkpoint step across emulated nodes: a node-local directory is caught."""

import pytest

pytestmark = pytest.mark.cluster


def test_a_checkpoint_dir_that_is_local_to_each_node_is_fs_inconsistent(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2, nics=("fast0",))
    local = str(tmp_path / "node-local-ckpt")  # the same path on both nodes, a different tmpfs on each
    args = ["--ddp-only", "--ckpt-dir", local, "--timeout", "120"]
    run = cluster.torchrun(2, args, tmp_path / "out", private_dir=local, timeout=180)
    assert run.returncodes == {0: 1, 1: 1}, run.logs[0][-3000:]
    (finding,) = run.findings("fs_inconsistent")
    assert finding["nodes"] == [0, 1] and finding["ranks"] == [0, 1, 2, 3], finding
    missing = {int(rank): files for rank, files in finding["evidence"]["missing"].items()}
    # Node 1's ranks see none of node 0's files (rank 0 wrote the manifest), and the reverse.
    assert {"manifest.json", "COMPLETE", "shard-00000.pt", "shard-00001.pt"} <= set(missing[2])
    assert set(missing[0]) == {"shard-00002.pt", "shard-00003.pt"}
    assert run.report["ddp"]["correctness"]["checksums_equal"]  # training itself was fine
    assert run.findings("ckpt_failed") == []


def test_a_checkpoint_dir_every_node_shares_passes(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2, nics=("fast0",))
    args = ["--ddp-only", "--ckpt-dir", str(tmp_path / "shared"), "--timeout", "120"]
    run = cluster.torchrun(1, args, tmp_path / "out", timeout=180)
    assert run.returncodes == {0: 0, 1: 0}, run.logs[0][-3000:]
    assert run.report["ddp"]["checkpoint"]["ok"] and run.report["verdict"] == "pass"
