"""--code and --check-path: what a node records (code_digest, path_summary) and how rank 0
judges the records of all nodes (judge_code, judge_paths)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nccldoctor.consistency import trees
from nccldoctor.consistency.trees import code_digest, judge_code, judge_paths, path_summary

HOSTS = {0: "h0", 1: "h1", 2: "h2", 3: "h3"}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, env=env
    ).stdout.decode()


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def make_repo(root: Path) -> Path:
    write(root, {"train.py": "print(1)\n", "pkg/model.py": "W = 1\n", ".gitignore": "*.log\nout/\n"})
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "first")
    return root


def same_path(record: dict, path: str = "/code") -> dict:
    """Every node checks the same path; in a test each node's copy lives somewhere else."""
    return {**record, "path": path}


# --- code_digest -------------------------------------------------------------------------------


def test_git_tree_records_head_and_only_the_dirty_and_untracked_files(tmp_path):
    repo = make_repo(tmp_path / "repo")
    clean = code_digest(str(repo))
    assert clean["kind"] == "git" and clean["head"] == git(repo, "rev-parse", "HEAD").strip()
    assert clean["dirty"] is False and clean["files"] == {} and clean["complete"] is True

    write(repo, {"pkg/model.py": "W = 2\n", "notes.txt": "new\n", "run.log": "ignored\n", "out/x": "ignored"})
    dirty = code_digest(str(repo))
    assert dirty["dirty"] is True and (dirty["changed"], dirty["untracked"]) == (1, 1)
    assert set(dirty["files"]) == {"pkg/model.py", "notes.txt"}  # not run.log, not out/x
    assert all(len(digest) == 12 for digest in dirty["files"].values())
    assert dirty["digest"] != clean["digest"]
    json.dumps(dirty)  # travels through the store

    write(repo, {"run.log": "changed, still ignored\n"})
    assert code_digest(str(repo))["digest"] == dirty["digest"]
    write(repo, {"notes.txt": "other\n"})
    assert code_digest(str(repo))["digest"] != dirty["digest"]


def test_git_digest_depends_on_the_code_not_on_where_the_clone_lives(tmp_path):
    repo = make_repo(tmp_path / "repo")
    subprocess.run(["git", "clone", "-q", str(repo), str(tmp_path / "clone")], check=True)
    assert code_digest(str(repo))["digest"] == code_digest(str(tmp_path / "clone"))["digest"]
    (repo / "train.py").unlink()
    deleted = code_digest(str(repo))
    assert (
        deleted["files"] == {"train.py": "deleted"}
        and deleted["digest"] != code_digest(str(tmp_path / "clone"))["digest"]
    )


def test_a_subdirectory_of_a_repo_covers_only_its_own_files(tmp_path):
    repo = make_repo(tmp_path / "repo")
    write(repo, {"train.py": "print(2)\n", "pkg/extra.py": "x\n"})
    record = code_digest(str(repo / "pkg"))
    assert record["prefix"] == "pkg/" and record["files"].keys() == {"extra.py"}


def test_plain_tree_maps_every_file_and_skips_vcs_and_caches(tmp_path):
    tree = write(tmp_path / "a", {"x.py": "1", "sub/y.py": "22", "__pycache__/x.pyc": "c", ".git/HEAD": "h"})
    record = code_digest(str(tree))
    assert record["kind"] == "tree" and record["complete"] is True
    assert list(record["files"]) == ["sub/y.py", "x.py"]
    assert (record["digested"], record["bytes"]) == (2, 3)
    copy = shutil.copytree(tree, tmp_path / "b")
    write(copy, {"__pycache__/x.pyc": "other bytecode"})
    assert code_digest(str(copy))["digest"] == record["digest"]
    write(copy, {"sub/y.py": "23"})
    changed = code_digest(str(copy))
    assert (
        changed["digest"] != record["digest"] and changed["files"]["sub/y.py"] != record["files"]["sub/y.py"]
    )


def test_budget_zero_stops_the_walk_and_says_so(tmp_path):
    tree = write(tmp_path / "a", {f"f{i}.py": str(i) for i in range(5)})
    record = code_digest(str(tree), budget_s=0)
    assert record["complete"] is False and record["digested"] == 0


def test_missing_path_and_missing_git_binary(tmp_path, monkeypatch):
    assert code_digest(str(tmp_path / "nope")) == {"path": str(tmp_path / "nope"), "kind": "missing"}
    repo = make_repo(tmp_path / "repo")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git to be found
    record = code_digest(str(repo))
    assert record["kind"] == "tree" and "git could not run" in record["note"]
    assert "train.py" in record["files"] and not any(rel.startswith(".git/") for rel in record["files"])


def test_a_subdirectory_that_cannot_be_listed_is_a_difference(tmp_path, monkeypatch):
    copies = tree_copies(tmp_path, 3)
    listing = trees._sorted_entries

    def refuse_on_node_1(path):
        if path == str(copies[1] / "pkg"):
            raise PermissionError(13, "Permission denied")
        return listing(path)

    monkeypatch.setattr(trees, "_sorted_entries", refuse_on_node_1)
    per_node = {node: [same_path(code_digest(str(copy)))] for node, copy in enumerate(copies)}
    assert list(per_node[1][0]["files"]) == ["a.py", "pkg", "z.py"]
    [finding] = judge_code(per_node, HOSTS)
    assert finding.nodes == [1] and "different files: pkg, pkg/b.py, pkg/c.py" in finding.message


# --- judge_code --------------------------------------------------------------------------------


def tree_copies(tmp_path: Path, count: int) -> list[Path]:
    base = write(tmp_path / "n0", {"a.py": "a", "pkg/b.py": "b", "pkg/c.py": "c", "z.py": "z"})
    return [base] + [shutil.copytree(base, tmp_path / f"n{node}") for node in range(1, count)]


def test_code_mismatch_names_the_odd_node_and_the_file_that_differs(tmp_path):
    copies = tree_copies(tmp_path, 4)
    write(copies[2], {"pkg/b.py": "edited on node 2"})
    per_node = {node: [same_path(code_digest(str(copy)))] for node, copy in enumerate(copies)}
    [finding] = judge_code(per_node, HOSTS)
    assert finding.code == "code_mismatch" and finding.severity.value == "fail"
    assert finding.nodes == [2]
    assert "node 2 (h2)" in finding.message and "pkg/b.py" in finding.message
    assert "a.py" not in finding.message.replace("pkg/b.py", "")
    assert "the other 3 nodes" in finding.message
    assert finding.evidence["differing_files"] == ["pkg/b.py"]
    assert "rsync -a --delete h0:/code/ /code/" in finding.fix


def test_no_finding_when_every_node_has_the_same_code(tmp_path):
    per_node = {
        node: [same_path(code_digest(str(copy)))] for node, copy in enumerate(tree_copies(tmp_path, 3))
    }
    assert judge_code(per_node, HOSTS) == []


def test_code_mismatch_says_head_differs(tmp_path):
    repos = [make_repo(tmp_path / f"r{node}") for node in range(3)]
    for repo in repos[1:]:  # same content, same commit metadata is not needed: compare trees
        shutil.rmtree(repo)
        subprocess.run(["git", "clone", "-q", str(repos[0]), str(repo)], check=True)
    write(repos[1], {"train.py": "print(3)\n"})
    git(repos[1], "commit", "-qam", "second")
    per_node = {node: [same_path(code_digest(str(repo)))] for node, repo in enumerate(repos)}
    [finding] = judge_code(per_node, HOSTS)
    new, old = (per_node[n][0]["head"][:12] for n in (1, 0))
    assert finding.nodes == [1] and f"HEAD {new} instead of {old}" in finding.message
    assert "git -C /code status" in finding.fix and "node 0 (h0)" in finding.fix


def test_a_cut_walk_compares_only_what_every_node_covered(tmp_path):
    copies = tree_copies(tmp_path, 3)
    records = {node: same_path(code_digest(str(copy))) for node, copy in enumerate(copies)}
    # node 1 stopped after two files: the files it did digest agree, so nothing differs
    records[1] = {**records[1], "complete": False, "digested": 2, "digest": "cut-short"}
    records[1]["files"] = dict(list(records[1]["files"].items())[:2])
    assert judge_code({node: [record] for node, record in records.items()}, HOSTS) == []
    # a difference inside the stretch every node covered is still found, and said to be partial
    records[2]["files"] = {**records[2]["files"], "a.py": "000000000000"}
    records[2]["digest"] = "other"
    [finding] = judge_code({node: [record] for node, record in records.items()}, HOSTS)
    assert finding.nodes == [2] and "a.py" in finding.message
    assert "walk stopped at its time budget on node 1 (h1)" in finding.message


def test_two_nodes_that_differ_are_a_tie_listing_each_node(tmp_path):
    copies = tree_copies(tmp_path, 2)
    write(copies[1], {"z.py": "zz"})
    per_node = {node: [same_path(code_digest(str(copy)))] for node, copy in enumerate(copies)}
    [finding] = judge_code(per_node, HOSTS)
    assert finding.code == "code_mismatch" and finding.nodes == [0, 1]
    assert "no majority" in finding.message
    for node in (0, 1):
        assert (
            f"node {node} (h{node}) has 4 files (digest {per_node[node][0]['digest'][:12]})"
            in finding.message
        )
    assert finding.message.endswith("files that differ: z.py")


def test_code_path_missing_on_a_node_is_path_missing(tmp_path):
    copies = tree_copies(tmp_path, 3)
    per_node = {node: [same_path(code_digest(str(copy)))] for node, copy in enumerate(copies)}
    per_node[1] = [same_path(code_digest(str(tmp_path / "absent")))]
    [finding] = judge_code(per_node, HOSTS)
    assert finding.code == "path_missing" and finding.nodes == [1]
    assert finding.message == "--code /code is missing on node 1 (h1); the other 2 nodes see it"


# --- path_summary ------------------------------------------------------------------------------


def test_path_summary_of_a_file_a_dir_and_a_missing_path(tmp_path):
    tree = write(tmp_path / "d", {"a": "12", "s/b": "345", "s/t/c": "6"})
    file_record = path_summary(str(tree / "a"))
    assert file_record["kind"] == "file" and file_record["readable"] and file_record["size"] == 2
    record = path_summary(str(tree))
    assert record["kind"] == "dir" and record["readable"] and record["complete"]
    assert (record["entries"], record["files"], record["dirs"], record["bytes"]) == (5, 3, 2, 6)
    assert record["level_entries"] == [2, 2, 1] and record["newest_mtime"] > 0
    assert path_summary(str(tmp_path / "nope"))["kind"] == "missing"
    json.dumps(record)


def test_path_summary_is_bounded_by_budget_and_entries(tmp_path):
    tree = write(tmp_path / "d", {"a": "1", "s/b": "2", "s/t/c": "3"})
    cut = path_summary(str(tree), budget_s=0)
    assert cut["readable"] and cut["complete"] is False and cut["stopped"] == "budget"
    assert cut["level_entries"] == [2] and cut["dirs_pending"] == 1  # the top listed, no deeper
    capped = path_summary(str(tree), max_entries=3)
    assert capped["complete"] is False and capped["stopped"] == "max_entries" and capped["entries"] == 3


def test_path_summary_of_a_dir_this_user_may_not_read(tmp_path, monkeypatch):
    write(tmp_path / "d", {"a": "1"})
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)  # root passes every check
    record = path_summary(str(tmp_path / "d"))
    assert record["exists"] is True and record["readable"] is False and record["error"] == "Permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_path_summary_of_an_unreadable_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    try:
        record = path_summary(str(locked))
        assert record["exists"] and record["readable"] is False
    finally:
        locked.chmod(0o700)


# --- judge_paths -------------------------------------------------------------------------------


def dir_record(entries: int, total: int, complete: bool = True, levels: list[int] | None = None) -> dict:
    levels = levels if levels is not None else [entries]
    return {
        "path": "/data",
        "exists": True,
        "readable": True,
        "kind": "dir",
        "entries": entries,
        "bytes": total,
        "newest_mtime": 1_700_000_000.0,
        "level_entries": levels,
        "level_bytes": [10 * count for count in levels],  # 10 bytes an entry
        "complete": complete,
    }


def test_path_missing_and_unreadable_nodes_are_named(tmp_path):
    write(tmp_path / "data", {"x": "1"})
    present = same_path(path_summary(str(tmp_path / "data")), "/data")
    per_node = {
        0: [present],
        1: [same_path(path_summary(str(tmp_path / "gone")), "/data")],
        2: [present],
        3: [
            {"path": "/data", "exists": True, "readable": False, "kind": "dir", "error": "Permission denied"}
        ],
    }
    [finding] = judge_paths(per_node, HOSTS)
    assert finding.code == "path_missing" and finding.nodes == [1, 3]
    assert finding.message == (
        "--check-path /data is missing on node 1 (h1); unreadable (Permission denied) on node 3 (h3); "
        "the other 2 nodes see it"
    )
    assert "findmnt -T /data" in finding.fix


def test_path_differs_names_the_node_with_other_counts():
    per_node = {node: [dir_record(1_280, 5 * 1024**3)] for node in range(4)}
    per_node[3] = [dir_record(1_204, 5 * 1024**3)]
    [finding] = judge_paths(per_node, HOSTS)
    assert finding.code == "path_differs" and finding.severity.value == "warn" and finding.nodes == [3]
    assert finding.message == (
        "--check-path /data differs: node 3 (h3) sees 1,204 entries (5 GiB); "
        "the other 3 nodes 1,280 entries (5 GiB)"
    )
    assert finding.evidence["newest_mtime_by_node"][0] == "2023-11-14T22:13:20Z"


def test_path_differs_on_two_nodes_is_a_tie():
    per_node = {0: [dir_record(10, 100)], 1: [dir_record(12, 100)]}
    [finding] = judge_paths(per_node, HOSTS)
    assert finding.nodes == [0, 1] and "no majority" in finding.message
    assert "node 0 (h0) sees 10 entries (100 B), node 1 (h1) sees 12 entries (100 B)" in finding.message


def test_partial_listings_compare_only_the_levels_every_node_listed():
    per_node = {
        0: [dir_record(30, 300, levels=[10, 20])],
        1: [dir_record(15, 150, complete=False, levels=[10])],  # stopped after the top level
        2: [dir_record(31, 310, levels=[10, 21])],
    }
    assert judge_paths(per_node, HOSTS) == []  # totals differ, the top levels agree
    per_node[1] = [dir_record(14, 150, complete=False, levels=[9])]
    [finding] = judge_paths(per_node, HOSTS)
    assert finding.nodes == [1] and "node 1 (h1) sees 9 entries" in finding.message
    assert "partial comparison, over the top 1 level" in finding.message


def test_mtime_alone_is_no_difference_and_a_file_of_another_size_is():
    records = {node: dir_record(5, 50) for node in range(3)}
    records[1]["newest_mtime"] += 3600
    assert judge_paths({node: [record] for node, record in records.items()}, HOSTS) == []
    files = {
        node: {"path": "/f", "exists": True, "readable": True, "kind": "file", "size": 4096}
        for node in range(3)
    }
    files[0]["size"] = 1_000_000
    [finding] = judge_paths({node: [record] for node, record in files.items()}, HOSTS)
    assert finding.nodes == [0] and "node 0 (h0) sees 977 KiB (1,000,000 bytes)" in finding.message


def test_a_node_without_git_is_named_and_says_why(tmp_path, monkeypatch):
    repos = [make_repo(tmp_path / "r0")]
    for node in (1, 2):
        subprocess.run(["git", "clone", "-q", str(repos[0]), str(tmp_path / f"r{node}")], check=True)
        repos.append(tmp_path / f"r{node}")
    per_node = {node: [same_path(code_digest(str(repo)))] for node, repo in enumerate(repos[:2])}
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    per_node[2] = [same_path(code_digest(str(repos[2])))]
    [finding] = judge_code(per_node, HOSTS)
    assert finding.nodes == [2]
    assert (
        "node 2 (h2) is a plain directory (no git) where the others have a git work tree" in finding.message
    )
    assert "git could not run" in finding.message
