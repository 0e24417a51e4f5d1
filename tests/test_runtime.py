"""Joining the job without a GPU: backend and device per rank (fake torch.cuda), launchers."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from helpers import fake_dist
from helpers.bench_parts import make_bench
from helpers.fake_cuda import FakeCuda, install

from nccldoctor.config import flag_disagreement, shared_flags
from nccldoctor.errors import UsageError
from nccldoctor.findings import EXIT_FAIL, Severity
from nccldoctor.runtime import (
    LaunchEnv,
    RankInfo,
    backend_disagreement,
    choose_backend,
    duplicate_gpus,
    publish_rank_info,
    read_launch_env,
)

NODE = "node 1 (gpu-b)"


@pytest.mark.parametrize("local_rank", [0, 1, 3])
def test_one_visible_gpu_per_process_is_cuda_0_on_every_rank(monkeypatch, local_rank):
    # Slurm --gpus-per-task=1 and some Kubernetes device plugins: every rank sees one GPU.
    install(monkeypatch, FakeCuda(count=1))
    env = {"CUDA_VISIBLE_DEVICES": str(local_rank)}
    for requested in ("auto", "nccl"):
        assert choose_backend(requested, local_rank, env=env, node=NODE) == ("nccl", torch.device("cuda", 0))


def test_all_gpus_visible_is_cuda_local_rank(monkeypatch):
    install(monkeypatch, FakeCuda(count=4))
    for local_rank in range(4):
        backend, device = choose_backend("auto", local_rank, env={}, node=NODE)
        assert backend == "nccl" and device == torch.device("cuda", local_rank)


@pytest.mark.parametrize("requested", ["auto", "nccl"])
def test_a_rank_without_a_gpu_is_named_with_its_node_and_what_it_sees(monkeypatch, requested):
    # 2 GPUs for 4 ranks: auto used to put ranks 2 and 3 on Gloo, and the job hung.
    install(monkeypatch, FakeCuda(count=2))
    with pytest.raises(UsageError) as error:
        choose_backend(requested, 2, env={"CUDA_VISIBLE_DEVICES": "0,1"}, node=NODE)
    message = str(error.value)
    assert NODE in message and "LOCAL_RANK 2" in message
    assert "2 visible" in message and "CUDA_VISIBLE_DEVICES=0,1" in message


def test_without_cuda_auto_is_gloo_and_nccl_is_refused(monkeypatch):
    install(monkeypatch, FakeCuda(count=0))
    assert choose_backend("auto", 3, env={}, node=NODE) == ("gloo", torch.device("cpu"))
    assert choose_backend("gloo", 3, env={}, node=NODE) == ("gloo", torch.device("cpu"))
    with pytest.raises(UsageError, match="needs CUDA and NCCL"):
        choose_backend("nccl", 0, env={}, node=NODE)


def test_gloo_is_kept_when_asked_for_even_with_gpus(monkeypatch):
    install(monkeypatch, FakeCuda(count=8))
    assert choose_backend("gloo", 9, env={}, node=NODE) == ("gloo", torch.device("cpu"))


def test_the_fake_cuda_events_time_in_milliseconds(monkeypatch):
    from nccldoctor.timing import Clock

    install(monkeypatch, FakeCuda(count=1, event_ms=250.0))
    clock = Clock(torch.device("cuda", 0))
    start, end = clock.mark(), clock.mark()
    assert clock.seconds(start, end) == 0.25


def info(rank, node, device, backend):
    return RankInfo(rank, rank % 2, node, f"host{node}", 100 + rank, device, backend=backend)


def test_ranks_that_resolved_other_backends_are_named_in_one_line():
    # --backend auto everywhere (the flags agree), but node 1 has no usable CUDA: rank 0's
    # check used to pass and the ranks waited on each other until the deadline.
    infos = [
        info(0, 0, "cuda:0", "nccl"),
        info(1, 0, "cuda:1", "nccl"),
        info(2, 1, "cpu", "gloo"),
        info(3, 1, "cpu", "gloo"),
        info(4, 2, "cuda:0", "nccl"),
        info(5, 2, "cuda:1", "nccl"),
    ]
    message = backend_disagreement(infos)
    assert "\n" not in message
    assert "node 1 (host1): ranks 2, 3 on gloo (cpu)" in message
    assert "nccl (cuda)" in message and "node 0" not in message and "node 2" not in message


def test_the_odd_ones_are_the_minority_even_when_rank_0_is_among_them():
    infos = [info(0, 0, "cpu", "gloo")] + [info(r, 1, f"cuda:{r}", "nccl") for r in (1, 2, 3)]
    message = backend_disagreement(infos)
    assert "node 0 (host0): rank 0 on gloo (cpu)" in message and "rank 1" not in message


def test_same_backend_and_device_type_on_every_rank_agrees():
    assert backend_disagreement([info(r, r // 2, f"cuda:{r % 2}", "nccl") for r in range(4)]) is None
    assert backend_disagreement([info(r, 0, "cpu", "gloo") for r in range(3)]) is None


def test_the_flag_check_alone_passes_mixed_backends():
    # Why the RankInfos must be compared too: every rank's flag still says "auto".
    assert flag_disagreement({0: {"backend": "auto"}, 1: {"backend": "auto"}}) is None


def test_a_flag_disagreement_names_the_flag_and_its_values_as_typed_not_as_python_prints_them():
    def line(key, ours, theirs):
        return flag_disagreement({0: {key: ours}, 1: {key: theirs}})

    assert line("max_bytes", 8 << 20, 1 << 20).startswith(
        "ranks were started with different flags: --max-bytes is 8M on rank 0 but 1M on rank 1"
    )
    assert "--probes is all_reduce on rank 0 but all_reduce, sendrecv on rank 1" in line(
        "probes", ["all_reduce"], ["all_reduce", "sendrecv"]
    )
    # Through the store (JSON), --sweep's items and --ports' ranges arrive as lists.
    assert "--sweep is none on rank 0 but NCCL_ALGO=Ring,Tree" in line(
        "sweep", [], [["NCCL_ALGO", ["Ring", "Tree"]]]
    )
    assert "--ports is 40000-40100 on rank 0" in line("ports", [[40000, 40100]], [])
    assert "--no-ddp is not given on rank 0 but given on rank 1" in line("ddp", True, False)
    assert not any(c in line("expect_busbw", {"all_reduce": 20.0}, {}) for c in "[]{}'")


def test_rank_0s_flag_check_stops_every_rank_on_mixed_backends():
    store = dist.HashStore()
    bench = make_bench(launch=LaunchEnv(rank=0, world_size=2, local_world_size=1, nnodes=2), store=store)
    flags = json.loads(json.dumps(shared_flags(bench.config)))
    publish_rank_info(store, dataclasses.replace(info(0, 0, "cuda:0", "nccl"), flags=flags))
    publish_rank_info(store, dataclasses.replace(info(1, 1, "cpu", "gloo"), flags=flags))
    with pytest.raises(UsageError, match=r"node 1 \(host1\): rank 1 on gloo \(cpu\)"):
        bench.agree_on_flags()
    assert "node 1" in store.get("flags_verdict").decode()  # what the other ranks raise too


# -- two ranks on one GPU ------------------------------------------------------------------------
UUID_A, UUID_B = "GPU-566e6f65-c38e-b12f-4824-6944218668b9", "GPU-0d4b8f5c-1a2b-3c4d-5e6f-7a8b9c0d1e2f"


def on_gpu(rank, node, uuid, visible="0"):
    info_ = dataclasses.replace(info(rank, node, "cuda:0", "nccl"), gpu_uuid=uuid)
    return dataclasses.replace(info_, env={"CUDA_VISIBLE_DEVICES": visible})


def test_ranks_of_one_node_on_one_gpu_are_named_once_per_gpu():
    infos = [
        on_gpu(0, 0, UUID_A),
        on_gpu(1, 0, UUID_A),  # the same CUDA_VISIBLE_DEVICES=0 as rank 0
        on_gpu(2, 0, UUID_B, visible="1"),
        on_gpu(3, 1, UUID_A),  # another node: another GPU, whatever an emulated UUID says
        info(4, 1, "cpu", "gloo"),  # no GPU, no UUID
        info(5, 1, "cpu", "gloo"),
    ]
    (finding,) = duplicate_gpus(infos)
    assert (finding.code, finding.severity, finding.ranks, finding.nodes) == (
        "duplicate_gpu",
        Severity.FAIL,
        [0, 1],
        [0],
    )
    assert UUID_A in finding.message and "Duplicate GPU detected" in finding.message
    assert "node 0 (host0)" in finding.message and "0: 0, 1: 0" in finding.fix
    assert finding.evidence["cuda_visible_devices"] == {0: "0", 1: "0"}
    assert duplicate_gpus([on_gpu(0, 0, UUID_A), on_gpu(1, 0, UUID_B, visible="1")]) == []


def test_two_ranks_on_one_gpu_stop_before_the_process_group_with_a_report(monkeypatch, tmp_path):
    # Each rank sees one GPU (CUDA_VISIBLE_DEVICES=0 on both), so each takes cuda:0: the same GPU.
    cuda = install(monkeypatch, FakeCuda(count=1))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(uuid=UUID_A[4:]))
    recorder = fake_dist.install(monkeypatch, cuda)
    store = dist.HashStore()
    launch = LaunchEnv(rank=0, world_size=2, local_world_size=2, master_addr="h", master_port=1)
    bench = make_bench(argv=["--out", str(tmp_path)], launch=launch, store=store)
    flags = json.loads(json.dumps(shared_flags(bench.config)))
    publish_rank_info(store, dataclasses.replace(on_gpu(1, 0, UUID_A), flags=flags))
    reports = []
    bench.sinks = lambda options: [SimpleNamespace(emit=lambda report, out_dir: reports.append(report))]
    bench.supervisor.finish = lambda code: code
    assert bench.run() == EXIT_FAIL
    assert recorder.inits == []  # NCCL never asked
    (finding,) = [f for f in reports[0].findings if f.code == "duplicate_gpu"]
    assert finding.ranks == [0, 1] and reports[0].complete
    peer = make_bench(launch=dataclasses.replace(launch, rank=1), store=store)
    assert peer.check_gpus() is False  # rank 1 stops on rank 0's verdict


# -- launchers ---------------------------------------------------------------------------------
MASTER = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}


def where(launch):
    return (launch.local_rank, launch.local_world_size, launch.node_rank, launch.nnodes)


def test_torchrun_variables_are_taken_as_they_are():
    env = MASTER | {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    env |= {"GROUP_RANK": "1", "GROUP_WORLD_SIZE": "2", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
    assert where(read_launch_env(env)) == (1, 4, 1, 2)  # torchrun inside a Slurm step: torchrun's


def test_slurm_srun_gives_local_id_and_node_id():
    # srun --ntasks-per-node 4 with RANK=$SLURM_PROCID, WORLD_SIZE=$SLURM_NTASKS exported.
    env = MASTER | {"RANK": "6", "WORLD_SIZE": "8", "SLURM_LOCALID": "2", "SLURM_NODEID": "1"}
    env |= {"SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "4", "SLURM_PROCID": "6"}
    assert where(read_launch_env(env)) == (2, 4, 1, 2)


def test_slurm_without_tasks_per_node_still_knows_the_node():
    env = MASTER | {
        "RANK": "6",
        "WORLD_SIZE": "8",
        "SLURM_LOCALID": "2",
        "SLURM_NODEID": "1",
        "SLURM_NNODES": "2",
    }
    assert where(read_launch_env(env)) == (2, 4, 1, 2)  # per node: world / nodes


def test_open_mpi_node_rank_comes_from_its_local_size():
    env = MASTER | {"RANK": "5", "WORLD_SIZE": "8"}
    env |= {"OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    assert where(read_launch_env(env)) == (1, 4, 1, 2)


@pytest.mark.parametrize(
    "extra",
    [
        {},  # RANK/WORLD_SIZE/MASTER_* by hand: used to be node 0, local rank = RANK, for every rank
        {"OMPI_COMM_WORLD_LOCAL_RANK": "1"},  # a local rank but no node and no local size
        {"SLURM_LOCALID": "1"},
    ],
)
def test_a_multi_rank_job_whose_node_is_unknown_is_refused(extra):
    env = MASTER | {"RANK": "5", "WORLD_SIZE": "8"} | extra
    with pytest.raises(UsageError, match="node") as error:
        read_launch_env(env)
    assert "GROUP_RANK" in str(error.value) and "SLURM_NODEID" in str(error.value)


def test_one_rank_needs_no_node_variables():
    assert where(read_launch_env(MASTER | {"RANK": "0", "WORLD_SIZE": "1"})) == (0, 1, 0, 1)
    assert not read_launch_env({}).distributed


def test_mpirun_inside_a_slurm_job_trusts_open_mpis_variables():
    # mpirun starts remote ranks under one srun task per node: SLURM_LOCALID is 0 for every
    # rank there, and SLURM_NODEID counts the remote nodes only (mpirun's own node is 0 too).
    env = MASTER | {"RANK": "5", "WORLD_SIZE": "8", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
    env |= {"SLURM_NODEID": "0", "SLURM_NNODES": "1"}
    env |= {"OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    assert where(read_launch_env(env)) == (1, 4, 1, 2)


def test_slurm_variables_of_another_task_are_not_this_ranks():
    # A batch script's own step (SLURM_PROCID 0) running ranks by other means: not srun's ranks.
    env = MASTER | {"RANK": "5", "WORLD_SIZE": "8", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
    env |= {"SLURM_NODEID": "0", "SLURM_NNODES": "2"}
    with pytest.raises(UsageError, match="cannot tell which node"):
        read_launch_env(env)


def test_a_bad_ranks_per_node_names_the_variable_it_came_from():
    env = MASTER | {"RANK": "1", "WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}
    with pytest.raises(UsageError, match="OMPI_COMM_WORLD_LOCAL_SIZE=0"):
        read_launch_env(env | {"OMPI_COMM_WORLD_LOCAL_SIZE": "0"})


# -- srun and mpirun without RANK ---------------------------------------------------------------
SRUN_STEP = {"SLURM_STEP_ID": "0", "SLURM_NNODES": "2", "SLURM_NTASKS": "8"}


def test_srun_without_rank_takes_its_task_id_and_task_count():
    env = MASTER | SRUN_STEP | {"SLURM_PROCID": "6", "SLURM_LOCALID": "2", "SLURM_NODEID": "1"}
    launch = read_launch_env(env)
    assert (launch.rank, launch.world_size, where(launch)) == (6, 8, (2, 4, 1, 2))


def test_srun_counts_its_steps_tasks_not_the_jobs():
    # A step of 4 tasks inside an allocation of 8: SLURM_STEP_NUM_TASKS is the step's own.
    env = MASTER | SRUN_STEP | {"SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_NUM_NODES": "1", "SLURM_NNODES": "1"}
    env |= {"SLURM_PROCID": "3", "SLURM_LOCALID": "3", "SLURM_NODEID": "0"}
    launch = read_launch_env(env)
    assert (launch.rank, launch.world_size, where(launch)) == (3, 4, (3, 4, 0, 1))


def test_a_batch_scripts_own_slurm_variables_are_not_a_job_of_ranks():
    # sbatch's script has SLURM_PROCID 0 and the job's task count, but no step: one process.
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
    assert not read_launch_env(env | {"SLURM_NNODES": "2"}).distributed


def test_mpirun_without_rank_takes_open_mpis_world():
    env = MASTER | {"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8"}
    env |= {"OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    launch = read_launch_env(env)
    assert (launch.rank, launch.world_size, where(launch)) == (5, 8, (1, 4, 1, 2))


def test_mpirun_ranks_dealt_round_robin_are_refused_not_given_the_wrong_node():
    # mpirun --map-by node, 8 ranks on 2 nodes: rank 5 is local rank 2 of node 1, not local rank 1.
    env = MASTER | {"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8"}
    env |= {"OMPI_COMM_WORLD_LOCAL_RANK": "2", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    with pytest.raises(UsageError, match="not numbered node by node") as error:
        read_launch_env(env)
    assert "--map-by node" in str(error.value) and "\n" not in str(error.value)


def test_mpirun_without_a_local_size_is_refused_as_an_unknown_node():
    env = MASTER | {
        "OMPI_COMM_WORLD_RANK": "5",
        "OMPI_COMM_WORLD_SIZE": "8",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1",
    }
    with pytest.raises(UsageError, match="cannot tell which node"):
        read_launch_env(env)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (SRUN_STEP | {"SLURM_PROCID": "1", "SLURM_LOCALID": "1", "SLURM_NODEID": "0"}, "before srun"),
        ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}, "mpirun -x MASTER_ADDR="),
    ],
)
def test_srun_and_mpirun_without_a_master_say_what_to_export(env, says):
    with pytest.raises(UsageError) as error:
        read_launch_env(env)
    message = str(error.value)
    assert "MASTER_ADDR and MASTER_PORT are not set" in message and says in message
    assert "\n" not in message
    with pytest.raises(UsageError, match=r"^environment: MASTER_PORT is not set \("):
        read_launch_env(env | {"MASTER_ADDR": "10.0.0.1"})


def test_a_launchers_only_process_without_a_master_runs_alone():
    env = {"SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_LOCALID": "0"}
    assert read_launch_env(env) == LaunchEnv()
    assert read_launch_env({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "1"}) == LaunchEnv()


@pytest.mark.parametrize(("procid", "printed"), [("0", 1), ("3", 0)])
def test_a_launch_error_under_srun_is_one_line_from_rank_0_and_exit_2(
    monkeypatch, capsys, tmp_path, procid, printed
):
    from nccldoctor import runner

    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (SRUN_STEP | {"SLURM_PROCID": procid, "SLURM_LOCALID": "0"}).items():
        monkeypatch.setenv(name, value)
    argv = ["--quiet", "--out", str(tmp_path)]  # a wrongly started run writes nothing here
    assert runner.run(argv, plan=lambda config: [], sinks=lambda options: []) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == printed and all("export MASTER_ADDR" in line for line in lines)
