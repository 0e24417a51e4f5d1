"""What do --code and --check-path cost? code_digest and path_summary against bare baselines.

    python benchmarks/consistency_trees.py [--files 10000] [--entries 100000] [--rounds 5]

Builds, in a temporary directory:

- a plain tree of --files files (100 per directory, 1-4 KiB each): code_digest (the whole walk:
  every file read and hashed, given all the time it needs) against os.walk + reading every file;
- the same tree as a git work tree (committed, 10 files changed, 10 untracked): code_digest
  (seven git commands) against one bare `git status --porcelain`;
- one flat directory of --entries empty files: path_summary against os.listdir;
- the tree again: path_summary against os.walk (listing only).

Each pair runs --rounds times, alternating which goes first, after one warm-up (page cache
warm). Printed: the median wall time of each and the ratio ours / baseline, and whether the
record was complete within its default budget (code_digest 2 s, path_summary 1 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nccldoctor.consistency.trees import code_digest, path_summary

GIT_ENV = {
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=10_000, help="files in the tree")
    p.add_argument("--entries", type=int, default=100_000, help="entries in the flat directory")
    p.add_argument("--rounds", type=int, default=5)
    return p.parse_args()


def build_tree(root: Path, files: int) -> None:
    for index in range(files):
        folder = root / f"d{index // 100:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = 1024 * (1 + index % 4)
        (folder / f"f{index:06d}.py").write_bytes(bytes([index % 251]) * size)


def build_flat(root: Path, entries: int) -> None:
    root.mkdir()
    for index in range(entries):
        (root / f"e{index:07d}").touch()


def build_git(source: Path, root: Path) -> None:
    shutil.copytree(source, root)
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "bench"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=env)
    for index in range(10):
        (root / "d0000" / f"f{index:06d}.py").write_bytes(b"changed")
        (root / f"untracked{index}.py").write_bytes(b"new")


def walk_and_read(root: str) -> None:
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as handle:
                while handle.read(1 << 20):
                    pass


def walk_only(root: str) -> None:
    for _ in os.walk(root):
        pass


def git_status(root: str) -> None:
    subprocess.run(["git", "-C", root, "status", "--porcelain"], check=True, capture_output=True)


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def compare(rounds: int, ours: Callable[[], object], bare: Callable[[], object]) -> tuple[float, float]:
    """Median seconds of each, alternating which goes first; one warm-up of each before."""
    ours(), bare()
    ours_s, bare_s = [], []
    for index in range(rounds):
        pair = [(ours, ours_s), (bare, bare_s)]
        for call, times in pair if index % 2 == 0 else reversed(pair):
            times.append(timed(call))
    return statistics.median(ours_s), statistics.median(bare_s)


def main() -> None:
    args = parse()
    with tempfile.TemporaryDirectory(prefix="nccldoctor-bench-") as tmp:
        tree, flat, repo = Path(tmp, "tree"), Path(tmp, "flat"), Path(tmp, "repo")
        build_tree(tree, args.files)
        build_flat(flat, args.entries)
        build_git(tree, repo)
        cases = [
            (
                f"code_digest, plain tree of {args.files:,} files",
                lambda: code_digest(str(tree), budget_s=3600),
                lambda: walk_and_read(str(tree)),
                "os.walk + read every file",
                lambda: code_digest(str(tree))["complete"],
            ),
            (
                f"code_digest, git work tree of {args.files:,} files",
                lambda: code_digest(str(repo), budget_s=3600),
                lambda: git_status(str(repo)),
                "git status --porcelain",
                lambda: code_digest(str(repo))["complete"],
            ),
            (
                f"path_summary, flat directory of {args.entries:,} entries",
                lambda: path_summary(str(flat), budget_s=3600, max_entries=10**9),
                lambda: os.listdir(flat),
                "os.listdir",
                lambda: path_summary(str(flat))["complete"],
            ),
            (
                f"path_summary, tree of {args.files:,} files",
                lambda: path_summary(str(tree), budget_s=3600),
                lambda: walk_only(str(tree)),
                "os.walk (listing only)",
                lambda: path_summary(str(tree))["complete"],
            ),
        ]
        print(f"{'case':48} {'baseline':26} {'base s':>8} {'ours s':>8} {'ratio':>6}  complete@default")
        for name, ours, bare, bare_name, complete in cases:
            ours_s, bare_s = compare(args.rounds, ours, bare)
            print(
                f"{name:48} {bare_name:26} {bare_s:8.3f} {ours_s:8.3f} {ours_s / bare_s:6.2f}  {complete()}"
            )


if __name__ == "__main__":
    main()
