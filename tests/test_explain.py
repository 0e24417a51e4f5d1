"""`nccldoctor explain`: signatures per class, attribution, root cause over symptoms, robustness."""

from __future__ import annotations

import gzip
import random

import pytest
from helpers.explain_excerpts import EXCERPTS, HEALTHY

from nccldoctor.explain import blocks
from nccldoctor.explain.attribution import attribute
from nccldoctor.explain.engine import explain
from nccldoctor.explain.events import PROC_KEYWORDS, scan
from nccldoctor.explain.reader import CHUNK, Source, expand
from nccldoctor.explain.report import explain_sources
from nccldoctor.explain.signatures import ANCHORS, KEYWORDS, SIGNATURES
from nccldoctor.findings import CATALOG


def findings_of(tmp_path, text: str | bytes, name: str = "job.log"):
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return explain(scan(expand([str(path)])))


@pytest.mark.parametrize("name", sorted(EXCERPTS))
def test_each_signature_class_names_its_code_ranks_and_hosts(tmp_path, name):
    text, code, ranks, hosts = EXCERPTS[name]
    findings = findings_of(tmp_path, text)
    root = findings[0]
    assert root.code == code, [f.message for f in findings]
    if ranks is not None:
        assert root.ranks == ranks
    if hosts is not None:
        assert root.evidence["hosts"] == hosts
    assert root.evidence["lines"][0].startswith(str(tmp_path / "job.log") + ":")


def test_every_signature_code_is_catalogued_and_cites_a_source():
    for signature in SIGNATURES:
        assert signature.code in CATALOG, signature.name
        assert signature.source and signature.keywords, signature.name


def test_every_keyword_holds_a_prefilter_anchor():
    # A keyword with no anchor in it would never reach its signature.
    keywords = set(KEYWORDS) | set(blocks.KEYWORDS) | set(PROC_KEYWORDS)
    assert [k for k in keywords if not any(a in k for a in ANCHORS)] == []


def test_ib_completion_error_explains_its_status_code(tmp_path):
    root = findings_of(tmp_path, EXCERPTS["ib_completion"][0])[0]
    assert "transport retry counter exceeded" in root.message and root.evidence["status"] == ["12"]


def test_watchdog_names_the_rank_behind_as_suspect(tmp_path):
    root = findings_of(tmp_path, EXCERPTS["watchdog"][0])[0]
    assert root.evidence["suspects"] == [1]  # its last completed work is behind rank 0's
    assert "ALLREDUCE" in root.message


@pytest.mark.parametrize(
    ("line", "rank", "local_rank", "host"),
    [
        ("[rank3]: RuntimeError: x", 3, None, None),
        ("[80746] [rank12]:[E321 02:07:08.408271257 ProcessGroupNCCL.cpp:607] x", 12, None, None),
        ("[default5]:Traceback (most recent call last):", None, 5, None),
        ("7: RuntimeError: boom", 7, None, None),
        (
            "gpu-3.cluster:12:34 [2] misc/socket.cc:71 NCCL WARN socketProgress: x",
            None,
            None,
            "gpu-3.cluster",
        ),
        ("[E ProcessGroupNCCL.cpp:475] [Rank 9] Watchdog caught", 9, None, None),
        ("[PG ID 0 PG GUID 0(default_pg) Rank 4] Exception", 4, None, None),
        ("[1,6]<stderr>:RuntimeError: x", 6, None, None),
        ("node07: RuntimeError: x", None, None, "node07"),
        ("[trainer0|0]:ncclInternalError: Internal check failed.", None, 0, None),
        (
            "[2026-03-13 22:26:02] host-01.example.com:XXXXXX [5] ibvwrap.c:262 NCCL WARN x",
            None,
            None,
            "host-01.example.com",
        ),
    ],
)
def test_attribution_reads_launcher_and_library_prefixes(line, rank, local_rank, host):
    who = attribute(line)
    assert (who.rank, who.local_rank, who.host) == (rank, local_rank, host)


def test_an_nccl_process_whose_rank_one_line_names_gives_that_rank_to_its_other_lines(tmp_path):
    text = (
        "node:2134736:2285781 [0] include/alloc.h:178 NCCL WARN Cuda failure 'out of memory'\n"
        "node:2134736:2285781 [0] proxy.cc:1518 NCCL WARN [Proxy Service 93] Failed to execute operation "
        "Setup from rank 93, retcode 1\n"
    )
    root = findings_of(tmp_path, text)[0]
    assert (root.code, root.ranks, root.evidence["hosts"]) == ("gpu_error", [93], ["node"])


def test_a_cause_without_a_rank_takes_the_rank_torchrun_reports(tmp_path):
    text = (
        "RuntimeError: CUDA error: invalid device ordinal\n"
        "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 1) local_rank: 1 (pid: 10622) "
        "of binary: /usr/bin/python3\n"
    )
    root = findings_of(tmp_path, text)[0]
    assert (root.code, root.ranks) == ("gpu_error", [1])
    assert "local rank 1, as torchrun reports the first failure" in root.message


def test_gloo_on_loopback_across_nodes_and_the_rank_outside_the_world(tmp_path):
    gloo = (
        "RuntimeError: Gloo connectFullMesh failed with [/pytorch/gloo/transport/tcp/pair.cc:152]\n"
        "  timed out connecting: SO_ERROR: Connection refused, remote=[127.0.0.1]:<port>\n"
        "  (rank=8, size=16, local=[127.0.0.1])\n"
    )
    root = findings_of(tmp_path, gloo)[0]
    assert (root.code, root.ranks) == ("iface_virtual", [8])
    barrier = "".join(
        f"INFO | Waiting in store based barrier to initialize process group for rank: {r}, key: "
        f"store_based_barrier_key:1 (world_size=2, worker_count=3, timeout=0:30:00)\n"
        for r in (0, 2)
    )
    root = findings_of(tmp_path, barrier, name="barrier.log")[0]
    assert (root.code, root.ranks) == ("rank_mismatch", [2])


def test_a_net_plugin_on_some_nodes_only_is_a_version_mismatch_naming_the_plainer_node(tmp_path):
    text = (
        "HGX-11:18226:18274 [5] NCCL INFO NET/Plugin: Could not find: libnccl-net.so. Using internal "
        "network plugin.\n"
        "HGX-04:589474:589541 [0] NCCL INFO Plugin Path : /opt/hpcx/sharp_plugin/lib/libnccl-net.so\n"
    )
    root = findings_of(tmp_path, text)[0]
    assert (root.code, root.evidence["hosts"]) == ("version_mismatch", ["HGX-11"])


def test_sockets_after_ib_found_nothing_is_only_info(tmp_path):
    text = "node1:2201:2201 [0] NCCL INFO NET/IB : No device found.\n" + HEALTHY
    (finding,) = findings_of(tmp_path, text)
    assert finding.code == "nccl_transport_fallback" and finding.severity.value == "info"


def test_timestamps_order_glog_and_iso_alike():
    assert attribute("E1101 10:00:00.5 x").time < attribute("2024-11-01 10:00:01,000 y").time


def crash_then_31_timeouts() -> str:
    lines = [
        "[rank7]:[E1101 12:00:01.000000 9 train.py:1] step 100",
        "[rank7]: Traceback (most recent call last):",
        '[rank7]:   File "train.py", line 10, in <module>',
        "[rank7]: ValueError: batch has NaN loss",
    ]
    for r in range(32):
        if r != 7:
            lines.append(
                f"[rank{r}]:[E1101 12:10:{r:02d}.000000 99 ProcessGroupNCCL.cpp:616] [Rank {r}] "
                "Watchdog caught collective operation timeout: WorkNCCL(SeqNum=42, OpType=ALLREDUCE, "
                "NumelIn=1, NumelOut=1, "
                "Timeout(ms)=600000) ran for 600060 milliseconds before timing out."
            )
    return "\n".join(lines) + "\n"


def test_one_crash_then_31_watchdog_timeouts_is_one_root_cause_and_one_collapsed_consequence(tmp_path):
    findings = findings_of(tmp_path, crash_then_31_timeouts())
    assert [f.code for f in findings] == ["rank_crashed", "collective_timeout"]
    root, timeouts = findings
    assert root.ranks == [7] and root.evidence["root_cause"] is True
    assert timeouts.ranks == [r for r in range(32) if r != 7]
    assert timeouts.evidence["consequence_of"] == "rank_crashed"
    assert timeouts.evidence["matches"] == 31
    assert timeouts.evidence["silent_ranks"] == [7]  # the one rank not waiting
    assert "consequence of the root cause: rank_crashed (rank 7)" in timeouts.message


def test_a_specific_cause_beats_the_crash_it_caused_and_torchrun_names_the_root(tmp_path):
    text = EXCERPTS["killed"][0].replace("rank      : 11", "rank      : 5") + EXCERPTS["cuda_oom"][0]
    findings = findings_of(tmp_path, text)
    assert findings[0].code == "gpu_error" and findings[0].ranks == [5]


def test_the_earliest_timestamp_wins_among_crashes(tmp_path):
    text = (
        "[rank2]:2024-11-01 10:00:05,000 x\n[rank2]: KeyError: 'b'\n"
        "[rank1]:2024-11-01 10:00:01,000 x\n[rank1]: KeyError: 'a'\n"
    )
    root = findings_of(tmp_path, text)[0]
    assert root.code == "rank_crashed" and "'a'" in root.message


def test_healthy_log_has_no_failure_and_socket_without_ib_is_fine(tmp_path):
    assert findings_of(tmp_path, HEALTHY * 50) == []


def test_sockets_on_a_host_whose_log_shows_ib_is_a_fallback(tmp_path):
    text = "node1:1:1 [0] NCCL INFO NCCL_IB_HCA set by environment to mlx5_0\n" + HEALTHY
    (finding,) = findings_of(tmp_path, text)
    assert finding.code == "nccl_transport_fallback" and finding.evidence["hosts"] == ["node1"]


def test_an_error_no_signature_knows_is_unexplained_with_its_last_lines(tmp_path):
    text = HEALTHY + "[rank0]: something odd happened\nFATAL: frobnicator jammed at stage 3\n"
    (finding,) = findings_of(tmp_path, text)
    assert finding.code == "unexplained_failure"
    assert "frobnicator" in finding.evidence["last_error_lines"][-1]


def test_report_has_a_logs_section_and_root_cause_first(tmp_path):
    path = tmp_path / "a.log"
    path.write_text(crash_then_31_timeouts())
    report = explain_sources(expand([str(tmp_path)]))
    logs = report.sections["logs"]
    assert logs["files"][0]["lines"] == 35 and logs["ranks_seen"] == list(range(32))
    assert logs["time_span"] == ["E1101 12:00:01.000000", "E1101 12:10:31.000000"]
    assert logs["root_cause"].startswith("root cause: rank_crashed")
    assert report.exit_code == 1


# --- robustness ---------------------------------------------------------------------------


def test_gzip_is_read_by_its_magic_bytes(tmp_path):
    findings = findings_of(tmp_path, gzip.compress(crash_then_31_timeouts().encode()), name="job.txt")
    assert findings[0].code == "rank_crashed"


def test_truncated_gzip_keeps_what_was_read(tmp_path):
    data = gzip.compress((HEALTHY * 2000 + crash_then_31_timeouts()).encode())
    path = tmp_path / "cut.log.gz"
    path.write_bytes(data[: len(data) // 2])
    sources = expand([str(path)])
    explain(scan(sources))
    assert sources[0].stats.error and sources[0].stats.lines > 0


def test_binary_junk_mixed_encodings_and_huge_lines_never_raise(tmp_path):
    rng = random.Random(16)
    junk = bytes(rng.randrange(256) for _ in range(300_000))
    latin1 = "[rank2]: RuntimeError: Gr\xfc\xdfe kaputt\n".encode("latin-1")
    no_newline = b"x" * (CHUNK + 10)  # one 'line' longer than a chunk
    data = junk + b"\n" + latin1 + no_newline + b"\n" + EXCERPTS["cuda_oom"][0].encode()
    findings = findings_of(tmp_path, data)
    assert "gpu_error" in [f.code for f in findings]


@pytest.mark.parametrize("seed", range(5))
def test_fuzzed_excerpts_never_raise(tmp_path, seed):
    rng = random.Random(seed)
    text = "".join(t for t, *_ in EXCERPTS.values()).encode()
    chars = bytearray(text)
    for _ in range(len(chars) // 20):  # flip 5% of the bytes, cut some lines short
        chars[rng.randrange(len(chars))] = rng.randrange(256)
    cuts = sorted(rng.sample(range(len(chars)), 30))
    pieces = [bytes(chars[a:b]) for a, b in zip([0, *cuts], [*cuts, len(chars)], strict=True)]
    findings_of(tmp_path, b"\n".join(pieces))


def test_lines_are_counted_across_chunks(tmp_path):
    path = tmp_path / "big.log"
    body = HEALTHY * (CHUNK // len(HEALTHY) + 5)
    path.write_text(body + "[rank1]: KeyError: 'z'\n")
    sources = expand([str(path)])
    state = scan(sources)
    assert sources[0].stats.lines == body.count("\n") + 1
    assert state.events[-1].line.number == body.count("\n") + 1


def test_stdin_is_a_source(monkeypatch, tmp_path):
    import io
    import sys

    fake = io.TextIOWrapper(io.BytesIO(EXCERPTS["shm"][0].encode()))
    monkeypatch.setattr(sys, "stdin", fake)
    sources = expand(["-"])
    assert explain(scan(sources))[0].code == "shm_too_small"
    assert sources[0].name == "-"


def test_a_missing_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        expand([str(tmp_path / "nope.log")])
    assert isinstance(Source("-"), Source)


def test_the_prefilter_finds_every_anchor_anywhere_in_a_line():
    from nccldoctor.explain.prefilter import candidate_spans

    anchors = tuple(a.encode() for a in ANCHORS)
    filler = b"[rank0]:2024-11-01 10:00:01,000 INFO train: step 10 loss 2.31\n" * 3
    for anchor in anchors:
        chunk = filler + b"x " + anchor + b" y\n" + filler
        assert [index for index, _, _ in candidate_spans(chunk, anchors)] == [3], anchor
    assert list(candidate_spans(filler, anchors)) == []


@pytest.mark.parametrize(
    "line",
    [
        "/var/spool/slurm/job1/slurm_script: line 12: 40123 Killed                  python train.py",
        "3: train.py exited with code 137",
    ],
)
def test_a_process_killed_outside_torchrun_is_rank_killed(tmp_path, line):
    assert findings_of(tmp_path, line + "\n")[0].code == "rank_killed"


def test_a_watchdog_timeout_where_nccl_used_p2p_gets_the_acs_hint(tmp_path):
    text = "node1:2201:2290 [0] NCCL INFO Channel 00 : 0[0] -> 1[1] via P2P/IPC\n" + EXCERPTS["watchdog"][0]
    root = findings_of(tmp_path, text)[0]
    assert root.code == "collective_timeout" and "NCCL_P2P_DISABLE=1" in root.fix
    assert root.evidence["p2p_hosts"] == ["node1"]


def test_a_torchrun_log_dir_file_names_its_local_rank(tmp_path):
    folder = tmp_path / "run1" / "attempt_0" / "3"
    folder.mkdir(parents=True)
    (folder / "stderr.log").write_text("RuntimeError: CUDA error: invalid device ordinal\n")
    root = explain(scan(expand([str(tmp_path)])))[0]
    assert (root.code, root.ranks, root.evidence["local_ranks"]) == ("gpu_error", [3], [3])


def test_nccl_on_loopback_in_a_healthy_single_host_log_is_only_a_warning(tmp_path):
    text = "box:1:1 [0] NCCL INFO NET/Socket : Using [0]lo:127.0.0.1<0>\n" + "[rank0]: step 1 loss 2.0\n"
    (finding,) = findings_of(tmp_path, text)
    assert (finding.code, finding.severity.value) == ("iface_virtual", "warn")
