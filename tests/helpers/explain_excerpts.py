"""Small log excerpts per signature class, in the spellings real logs use (see each entry's
source in nccldoctor/explain/signatures.py). Shared by tests/test_explain.py and
benchmarks/explain_speed.py, which builds its big log from them."""

from __future__ import annotations

# name -> (log text, expected root code, expected ranks or None, expected hosts or None)
EXCERPTS: dict[str, tuple[str, str, list[int] | None, list[str] | None]] = {
    "nccl_no_iface": (
        "node1:2201:2201 [0] NCCL INFO NCCL_SOCKET_IFNAME set by environment to eth9\n"
        "node1:2201:2201 [0] bootstrap.cc:45 NCCL WARN Bootstrap : no socket interface found\n"
        "[rank0]: torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1691, "
        "internal error - please report this issue to the NCCL developers, NCCL version 2.18.1\n",
        "iface_missing",
        None,
        ["node1"],
    ),
    "gloo_no_iface": (
        "[rank1]: RuntimeError: [enforce fail at ../third_party/gloo/gloo/transport/tcp/device.cc:83] "
        "ifa != nullptr. Unable to find address for: eth1\n",
        "iface_missing",
        [1],
        None,
    ),
    "nccl_virtual": (
        "gpu-a:100:100 [0] NCCL INFO Bootstrap : Using docker0:172.17.0.1<0>\n"
        "gpu-a:100:100 [0] NCCL INFO NET/Socket : Using [0]docker0:172.17.0.1<0>\n"
        "gpu-a:100:180 [0] misc/socket.cc:483 NCCL WARN socketStartConnect: Connect to 172.17.0.1<45763> "
        "failed : Connection refused\n",
        "iface_virtual",
        None,
        ["gpu-a"],
    ),
    "peer_refused": (
        "[rank2]:[E1101 10:00:01.000000 9 ProcessGroupNCCL.cpp:1] some context\n"
        "gpu-b:3468:3905 [2] misc/socket.cc:483 NCCL WARN socketStartConnect: Connect to 10.0.0.7<43210> "
        "failed : Connection refused\n",
        "peer_unreachable",
        None,
        ["gpu-b"],
    ),
    "gloo_reset": (
        "[rank3]: RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:589] Read error "
        "[192.168.70.92]:25266: Connection reset by peer\n",
        "peer_unreachable",
        [3],
        None,
    ),
    "master_port": (
        "[W socket.cpp:464] [c10d] The server socket has failed to bind to [::]:29500 (errno: 98 - "
        "Address already in use).\n"
        "torch.distributed.DistNetworkError: The server socket has failed to listen on any local network "
        "address. The server socket has failed to bind to [::]:29500 (errno: 98 - Address already in use).\n",
        "master_port_in_use",
        None,
        None,
    ),
    "master_unreachable": (
        "[W socket.cpp:663] [c10d] The client socket has failed to connect to [node0]:29500 (errno: 110 - "
        "Connection timed out).\n"
        "torch.distributed.DistStoreError: Timed out after 901 seconds waiting for clients. 1/2 clients "
        "joined.\n",
        "master_unreachable",
        None,
        None,
    ),
    "mismatch": (
        "[rank1]: RuntimeError: Detected mismatch between collectives on ranks. Rank 1 is running "
        "collective: CollectiveFingerPrint(SequenceNumber=21, OpType=BROADCAST, TensorShape=[1]), but "
        "Rank 0 is running collective: CollectiveFingerPrint(SequenceNumber=21, OpType=ALLREDUCE).\n",
        "collective_mismatch",
        [0, 1],  # both ranks the report names
        None,
    ),
    "ib_completion": (
        "kp-worker-0:3468:3905 [4] transport/net_ib.cc:1295 NCCL WARN NET/IB : Got completion from peer "
        "10.216.210.236<54862> with status=12 opcode=0 len=0 vendor err 129 (Recv) localGid ::ffff:1.2.3.4\n"
        "kp-worker-0:3468:3905 [4] NCCL INFO transport/net.cc:1302 -> 6\n",
        "ib_error",
        None,
        ["kp-worker-0"],
    ),
    "cuda_oom": (
        "[rank5]: Traceback (most recent call last):\n"
        '[rank5]:   File "train.py", line 10, in <module>\n'
        "[rank5]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.\n",
        "gpu_error",
        [5],
        None,
    ),
    "xid": (
        "[Tue Nov  1 10:00:00 2024] NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.\n",
        "gpu_error",
        None,
        None,
    ),
    "duplicate_gpu": (
        "node3:55:55 [1] init.cc:700 NCCL WARN Duplicate GPU detected : rank 1 and rank 0 both on CUDA "
        "device 1000\n",
        "duplicate_gpu",
        [0, 1],  # every rank the line names
        ["node3"],
    ),
    "shm": (
        "node2:10:10 [0] include/shm.h:28 NCCL WARN Call to posix_fallocate failed : "
        "No space left on device\n"
        "node2:10:10 [0] include/shm.h:48 NCCL WARN Error while creating shared memory segment "
        "/dev/shm/nccl-vzIpS6 (size 9637888)\n",
        "shm_too_small",
        None,
        ["node2"],
    ),
    "version": (
        "node1:1:1 [0] NCCL INFO NCCL version 2.18.1+cuda12.1\n"
        "node2:1:1 [0] NCCL INFO NCCL version 2.19.3+cuda12.2\n"
        "[rank8]: torch.distributed.DistBackendError: NCCL error: remote process exited or there was a "
        "network error, NCCL version 2.19.3\n",
        "version_mismatch",
        None,
        ["node1"],  # a tie between two nodes: the older version is the odd one
    ),
    "rank_layout": (
        "node0:9:9 [0] bootstrap.cc:200 NCCL WARN Bootstrap Root : "
        "mismatch in rank count from procs 8 : 16\n",
        "rank_mismatch",
        None,
        ["node0"],
    ),
    "killed": (
        "[2024-11-01 10:00:00,000] torch.distributed.elastic.multiprocessing.api: [ERROR] failed "
        "(exitcode: -9) local_rank: 3 (pid: 1234) of binary: /usr/bin/python\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n"
        "============================================================\n"
        "train.py FAILED\n"
        "------------------------------------------------------------\n"
        "Failures:\n"
        "  <NO_OTHER_FAILURES>\n"
        "------------------------------------------------------------\n"
        "Root Cause (first observed failure):\n"
        "[0]:\n"
        "  time      : 2024-11-01_10:00:00\n"
        "  host      : gpu-node-7\n"
        "  rank      : 11 (local_rank: 3)\n"
        "  exitcode  : -9 (pid: 1234)\n"
        "  error_file: <N/A>\n"
        "  traceback : Signal 9 (SIGKILL) received by PID 1234\n"
        "============================================================\n",
        "rank_killed",
        [11],
        ["gpu-node-7"],
    ),
    "crashed": (
        "[rank4]: Traceback (most recent call last):\n"
        '[rank4]:   File "train.py", line 3, in <module>\n'
        "[rank4]: KeyError: 'labels'\n",
        "rank_crashed",
        [4],
        None,
    ),
    "dataloader": (
        "[rank6]: RuntimeError: DataLoader worker (pid 4321) is killed by signal: Killed. \n",
        "dataloader_worker_died",
        [6],
        None,
    ),
    "watchdog": (
        "[rank0]:[E626 06:24:44.903881913 ProcessGroupNCCL.cpp:616] [Rank 0] Watchdog caught collective "
        "operation timeout: WorkNCCL(SeqNum=808, OpType=ALLREDUCE, NumelIn=9801523, NumelOut=9801523, "
        "Timeout(ms)=600000) ran for 600030 milliseconds before timing out.\n"
        "[rank1]:[E626 06:24:44.906457629 ProcessGroupNCCL.cpp:1785] [PG ID 0 PG GUID 0(default_pg) Rank 1] "
        "Exception (either an error or timeout) detected by watchdog at work: 807, last enqueued NCCL work: "
        "807, last completed NCCL work: 806.\n"
        "[rank0]:[E626 06:24:44.906457629 ProcessGroupNCCL.cpp:1785] [PG ID 0 PG GUID 0(default_pg) Rank 0] "
        "Exception (either an error or timeout) detected by watchdog at work: 808, last enqueued NCCL work: "
        "811, last completed NCCL work: 807.\n",
        "collective_timeout",
        [0, 1],
        None,
    ),
}

# A healthy run's lines: what fills most of a real log (and the benchmark's big one): NCCL's
# init lines once per process, then training steps.
NCCL_INIT = (
    "node1:2201:2201 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.1<0>\n"
    "node1:2201:2201 [0] NCCL INFO NET/Plugin : No plugin found (libnccl-net.so), "
    "using internal implementation\n"
    "node1:2201:2201 [0] NCCL INFO NET/Socket : Using [0]eth0:10.0.0.1<0>\n"
    "node1:2201:2201 [0] NCCL INFO Using network Socket\n"
    "node1:2201:2201 [0] NCCL INFO NCCL version 2.18.1+cuda12.1\n"
    "node1:2201:2290 [0] NCCL INFO Channel 00/02 :    0   1\n"
    "node1:2201:2290 [0] NCCL INFO Channel 00 : 0[0] -> 1[1] via P2P/IPC\n"
)
STEPS = (
    "[rank0]:2024-11-01 10:00:01,000 INFO train: epoch 0 step 10 loss 2.3141 lr 3.0e-04 tokens/s 51234\n"
    "[rank1]:2024-11-01 10:00:01,002 INFO train: epoch 0 step 10 loss 2.3152 lr 3.0e-04 tokens/s 51190\n"
    "[rank0]:2024-11-01 10:00:02,000 INFO train: epoch 0 step 11 loss 2.2987 lr 3.0e-04 tokens/s 51301\n"
)
HEALTHY = NCCL_INIT + STEPS
