"""Is the code the same on every node (--code DIR), and does every node see a path (--check-path)?

A node leader records its own view with `code_digest` and `path_summary` (JSON-able dicts, cheap,
bounded in time: a huge tree is sampled, never walked for minutes); rank 0 judges the records of
all nodes with `judge_code` and `judge_paths`, naming the odd nodes against the majority.

Record shapes (every record has `path` and `kind`):

code_digest, kind "git": root, prefix, head, tree, dirty, changed, untracked, files, files_capped,
    digested, complete, digest, elapsed_s. `files` maps each changed or untracked file (relative
    to DIR) to the first 12 hex digits of its content's sha256, or "deleted".
code_digest, kind "tree": files, files_capped, digested, bytes, complete, digest, elapsed_s (and
    `note` when a git work tree had to be walked instead). `files` maps every file walked.
code_digest, kind "missing" | "unreadable" (with `error`).
path_summary: exists, readable, kind "file" | "dir" | "other" | "missing" | "unknown" (`error`
    when it cannot be read); a file adds size and mtime; a dir adds entries, files, dirs, bytes,
    newest_mtime, level_entries, level_bytes, dirs_listed, dirs_pending, unreadable_dirs,
    complete, stopped, elapsed_s. level_entries / level_bytes: per depth level listed whole.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from nccldoctor.consistency.majority import Majority, node_text, odd_ones_out
from nccldoctor.findings import Finding, make_finding
from nccldoctor.units import format_bytes

DIGEST_HEX = 12  # per-file digests: enough to tell files apart, small in the store
GIT_FILES_CAP = 200  # changed or untracked files listed one by one in a git record
TREE_FILES_CAP = 20_000  # files listed one by one in a tree record (~0.5 MB of JSON)
SHOWN_FILES = 5  # differing files a message names
CHUNK = 1 << 20
# VCS metadata and bytecode caches differ between copies of the same code (clone history,
# Python version, timestamps): they would make every rsynced tree look different.
SKIP_DIRS = frozenset({".git", "__pycache__"})
GIT_MIN_TIMEOUT_S = 1.0
# Read-only git: no index lock taken beside a running git, no pager, English errors.
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
_DIFF_FLAGS = ("--no-ext-diff", "--no-textconv", "--no-color", "--relative")


class _Budget:
    """A deadline for one record: every loop asks before it reads more."""

    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + seconds

    def out(self) -> bool:
        return time.monotonic() >= self.deadline

    def left(self, floor_s: float = 0.0) -> float:
        return max(self.deadline - time.monotonic(), floor_s)

    def elapsed(self) -> float:
        return round(time.monotonic() - self.start, 3)


class _GitError(Exception):
    """git is absent, failed or ran out of time: the directory is walked instead."""


class _NotGit(_GitError):
    """The directory is not in a git work tree: a plain directory, nothing to note."""


# --- code_digest -------------------------------------------------------------------------------


def code_digest(path: str, budget_s: float = 2.0) -> dict[str, Any]:
    """This node's fingerprint of the code in `path` (see the module docstring for its keys)."""
    budget = _Budget(budget_s)
    try:
        os.stat(path)
    except FileNotFoundError:
        return {"path": path, "kind": "missing"}
    except OSError as exc:
        return {"path": path, "kind": "unreadable", "error": _error_text(exc)}
    note = ""
    if os.path.isdir(path):
        try:
            return _git_digest(path, budget)
        except _NotGit:
            pass
        except _GitError as exc:
            note = f"{exc}; walked as a plain directory"
    record = _tree_digest(path, budget)
    if note and record["kind"] == "tree":
        record["note"] = note
    return record


def _git(path: str, args: list[str], budget: _Budget) -> bytes:
    """stdout of `git -C path ARGS`; _GitError when git is absent, fails or times out.

    Each command gets what is left of the budget but at least GIT_MIN_TIMEOUT_S: git's own
    start-up must not turn a small budget into a failed check."""
    timeout_s = round(budget.left(GIT_MIN_TIMEOUT_S), 3)
    try:
        done = subprocess.run(
            ["git", "-C", path, *args],
            capture_output=True,
            timeout=timeout_s,
            check=False,
            env={**os.environ, **_GIT_ENV},
        )
    except OSError as exc:
        raise _GitError(f"git could not run ({_error_text(exc)})") from exc
    except subprocess.TimeoutExpired as exc:
        raise _GitError(f"git {args[0]} took more than {timeout_s:g} s") from exc
    if done.returncode != 0 and b"not a git repository" in done.stderr:
        raise _NotGit(path)
    if done.returncode != 0:
        first = done.stderr.decode(errors="replace").strip().splitlines()
        raise _GitError(f"git {args[0]} failed: {first[0] if first else done.returncode}")
    return done.stdout


def _git_digest(path: str, budget: _Budget) -> dict[str, Any]:
    """HEAD's tree for `path`, the uncommitted diff and the untracked files under `path`."""
    root = _git(path, ["rev-parse", "--show-toplevel"], budget).decode(errors="replace").strip()
    head = _git(path, ["rev-parse", "HEAD"], budget).decode().strip()
    prefix = _git(path, ["rev-parse", "--show-prefix"], budget).decode(errors="replace").strip()
    tree = _subtree(path, prefix, budget)
    diff = _git(path, ["diff", "HEAD", "--binary", *_DIFF_FLAGS, "--", "."], budget)
    changed = _nul_list(_git(path, ["diff", "HEAD", "--name-only", "-z", *_DIFF_FLAGS, "--", "."], budget))
    untracked = _nul_list(_git(path, ["ls-files", "--others", "--exclude-standard", "-z"], budget))
    files, complete = _digest_files(path, sorted({*changed, *untracked}, key=_walk_key), budget)
    overall = hashlib.sha256(f"git\0{tree}\0{hashlib.sha256(diff).hexdigest()}\0".encode())
    for rel in sorted(untracked):
        overall.update(f"{rel}\0{files.get(rel, '?')}\n".encode(errors="surrogateescape"))
    return {
        "path": path,
        "kind": "git",
        "root": root,
        "prefix": prefix,
        "head": head,
        "tree": tree,
        "dirty": bool(changed or untracked),
        "changed": len(changed),
        "untracked": len(untracked),
        "files": dict(list(files.items())[:GIT_FILES_CAP]),
        "files_capped": len(files) > GIT_FILES_CAP,
        "digested": len(files),
        "complete": complete,
        "digest": overall.hexdigest(),
        "elapsed_s": budget.elapsed(),
    }


def _subtree(path: str, prefix: str, budget: _Budget) -> str:
    """The tree object of `path` in HEAD: two nodes at different commits that do not touch
    DIR still agree. "" when DIR is not in HEAD (every file in it is then untracked)."""
    try:
        return _git(path, ["rev-parse", f"HEAD:{prefix}"], budget).decode().strip()
    except _GitError:
        return ""


def _nul_list(output: bytes) -> list[str]:
    return [os.fsdecode(item) for item in output.split(b"\0") if item]


def _digest_files(base: str, rels: list[str], budget: _Budget) -> tuple[dict[str, str], bool]:
    """{rel: 12-hex digest | "deleted"} of the working copies, until the budget runs out."""
    files: dict[str, str] = {}
    for rel in rels:
        if budget.out():
            return files, False
        full = os.path.join(base, rel)
        if not os.path.lexists(full):
            files[rel] = "deleted"
            continue
        digest = _entry_digest(full, budget)
        if digest is None:
            return files, False
        files[rel] = digest[:DIGEST_HEX]
    return files, True


def _entry_digest(full: str, budget: _Budget, mode: int | None = None) -> str | None:
    """sha256 of a file's content, of a symlink's target text, or of the kind of anything else
    (a FIFO would block a read). None when the budget ran out halfway through the file."""
    try:
        mode = os.lstat(full).st_mode if mode is None else mode
        if stat.S_ISLNK(mode):
            return hashlib.sha256(b"symlink\0" + os.fsencode(os.readlink(full))).hexdigest()
        if not stat.S_ISREG(mode):
            return hashlib.sha256(f"special\0{stat.S_IFMT(mode)}".encode()).hexdigest()
        return _file_digest(full, budget)
    except OSError as exc:
        return hashlib.sha256(f"unreadable\0{type(exc).__name__}".encode()).hexdigest()


def _file_digest(full: str, budget: _Budget) -> str | None:
    digest = hashlib.sha256()
    with open(full, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if budget.out() and handle.read(1):  # out of time with more of the file to read
                return None
    return digest.hexdigest()


def _tree_digest(path: str, budget: _Budget) -> dict[str, Any]:
    """Every file under `path` in name order (one file: itself), until the budget runs out."""
    walk = _Walk(path, budget)
    files: dict[str, str] = {}
    overall = hashlib.sha256(b"tree\0")
    digested = total = 0
    try:
        for rel, full, mode, size in walk:
            digest = _UNLISTED if mode is None else _entry_digest(full, budget, mode)
            if digest is None:
                walk.cut = True
                break
            overall.update(f"{rel}\0{size}\0{digest}\n".encode(errors="surrogateescape"))
            digested, total = digested + 1, total + size
            if len(files) < TREE_FILES_CAP:
                files[rel] = digest[:DIGEST_HEX]
    except OSError as exc:  # the directory itself cannot be listed
        return {"path": path, "kind": "unreadable", "error": _error_text(exc)}
    return {
        "path": path,
        "kind": "tree",
        "files": files,
        "files_capped": digested > len(files),
        "digested": digested,
        "bytes": total,
        "complete": not walk.cut,
        "digest": overall.hexdigest(),
        "elapsed_s": budget.elapsed(),
    }


# A subdirectory this node cannot list: a difference in itself, so it has a digest of its own.
_UNLISTED = hashlib.sha256(b"unlisted directory").hexdigest()


_Walked = tuple[str, str, int | None, int]  # relpath, full path, mode (None: unlisted dir), size


class _Walk:
    """Every file under `root`, depth first in name order: the same order on every node, so
    that two nodes cut short by their budgets still cover a common first stretch (_walk_key).
    A subdirectory that cannot be listed comes out as an entry whose mode is None."""

    def __init__(self, root: str, budget: _Budget) -> None:
        self.root, self.budget, self.cut = root, budget, False

    def __iter__(self) -> Iterator[_Walked]:
        if not os.path.isdir(self.root):
            if self.budget.out():
                self.cut = True
                return
            st = os.lstat(self.root)
            yield os.path.basename(self.root), self.root, st.st_mode, st.st_size
            return
        # (entries left, their relpath prefix); the top's OSError means unreadable
        stack = [(iter(_sorted_entries(self.root)), "")]
        while stack:
            entry = next(stack[-1][0], None)
            if entry is None:
                stack.pop()
                continue
            if self.budget.out():
                self.cut = True
                return
            yield from self._visit(entry, stack[-1][1] + entry.name, stack)

    def _visit(self, entry: os.DirEntry, rel: str, stack: list) -> Iterator[_Walked]:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:  # gone since the listing
            return
        if stat.S_ISDIR(st.st_mode):
            if entry.name in SKIP_DIRS:
                return
            try:
                stack.append((iter(_sorted_entries(entry.path)), rel + "/"))
            except OSError:
                yield rel, entry.path, None, 0
            return
        yield rel, entry.path, st.st_mode, st.st_size


def _sorted_entries(path: str) -> list[os.DirEntry]:
    with os.scandir(path) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _walk_key(rel: str) -> tuple[str, ...]:
    """A relpath's place in the walk: depth first in name order is the order of the component
    tuples ("a/b" comes before "a.txt", unlike in plain string order)."""
    return tuple(rel.split("/"))


def _error_text(exc: OSError) -> str:
    """'Permission denied' rather than a Python repr."""
    return exc.strerror or type(exc).__name__


# --- path_summary ------------------------------------------------------------------------------


def path_summary(path: str, budget_s: float = 1.0, max_entries: int = 200_000) -> dict[str, Any]:
    """What this node sees at `path` (see the module docstring for its keys)."""
    budget = _Budget(budget_s)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return {"path": path, "exists": False, "readable": False, "kind": "missing"}
    except OSError as exc:  # a parent we may not search: whether it exists is unknown
        return {"path": path, "exists": None, "readable": False, "kind": "unknown", "error": _error_text(exc)}
    if stat.S_ISDIR(st.st_mode):
        return _dir_summary(path, budget, max_entries)
    record = {"path": path, "exists": True, "kind": "file" if stat.S_ISREG(st.st_mode) else "other"}
    record.update(readable=os.access(path, os.R_OK), size=st.st_size, mtime=st.st_mtime)
    if record["kind"] == "file" and record["readable"]:
        record.update(_try_open(path))
    return record


def _try_open(path: str) -> dict[str, Any]:
    """os.access trusts the mode bits; a read proves it (ACLs, root squash, a stale mount)."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        return {"readable": False, "error": _error_text(exc)}
    return {}


def _dir_summary(path: str, budget: _Budget, max_entries: int) -> dict[str, Any]:
    """Breadth first, one level at a time, while budget and max_entries last: the top listing
    first, so that a huge tree is sampled from the top, never walked for minutes."""
    record: dict[str, Any] = {"path": path, "exists": True, "kind": "dir"}
    if not os.access(path, os.R_OK | os.X_OK):
        return {**record, "readable": False, "error": "Permission denied"}
    tally = _Tally(budget, max_entries)
    try:
        tally.level([path])
    except OSError as exc:
        return {**record, "readable": False, "error": _error_text(exc)}
    while tally.pending and not tally.stopped:
        tally.level(tally.pending)
    return {**record, "readable": True, **tally.as_dict()}


class _Tally:
    """Counts of a directory tree, level by level; a level counts only when listed whole."""

    def __init__(self, budget: _Budget, max_entries: int) -> None:
        self.budget, self.max_entries = budget, max_entries
        self.entries = self.files = self.dirs = self.bytes = self.listed = self.unreadable = 0
        self.newest = 0.0
        self.level_entries: list[int] = []
        self.level_bytes: list[int] = []
        self.pending: list[str] = []
        self.stopped: str | None = None  # "budget" | "max_entries"

    def level(self, dirs: list[str]) -> None:
        """List every directory of one level; the first (the top) raises when unreadable."""
        top = not self.level_entries
        before_entries, before_bytes, next_level = self.entries, self.bytes, []
        for index, directory in enumerate(dirs):
            if not top and self.budget.out():  # the top is always listed: it proves readable
                self.stopped = "budget"
            if self.stopped:
                self.pending = dirs[index:] + next_level
                return
            try:
                next_level += self._list(directory)
            except OSError:
                if top:
                    raise
                self.unreadable += 1
        if self.stopped:  # max_entries reached inside the last listing
            self.pending = next_level
            return
        self.level_entries.append(self.entries - before_entries)
        self.level_bytes.append(self.bytes - before_bytes)
        self.pending = next_level

    def _list(self, directory: str) -> list[str]:
        subdirs = []
        with os.scandir(directory) as entries:
            self.listed += 1
            for entry in entries:
                if self.entries >= self.max_entries:
                    self.stopped = "max_entries"
                    break
                if self.entries % 512 == 511 and self.budget.out():
                    self.stopped = "budget"
                    break
                self._count(entry, subdirs)
        return subdirs

    def _count(self, entry: os.DirEntry, subdirs: list[str]) -> None:
        self.entries += 1
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:  # gone since the listing
            return
        self.newest = max(self.newest, st.st_mtime)
        if stat.S_ISDIR(st.st_mode):
            self.dirs += 1
            subdirs.append(entry.path)
        elif stat.S_ISREG(st.st_mode):
            self.files += 1
            self.bytes += st.st_size

    def as_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "files": self.files,
            "dirs": self.dirs,
            "bytes": self.bytes,
            "newest_mtime": self.newest or None,
            "level_entries": self.level_entries,
            "level_bytes": self.level_bytes,
            "dirs_listed": self.listed,
            "dirs_pending": len(self.pending),
            "unreadable_dirs": self.unreadable,
            "complete": self.stopped is None and not self.pending,
            "stopped": self.stopped,
            "elapsed_s": self.budget.elapsed(),
        }


# --- judgement (rank 0) ------------------------------------------------------------------------


def judge_code(per_node: Mapping[int, list[dict]], hostnames: Mapping[int, str]) -> list[Finding]:
    """code_mismatch per --code path whose code differs; path_missing where it is absent."""
    findings: list[Finding] = []
    for path, records in _by_path(per_node).items():
        findings += _path_missing("--code", path, records, hostnames)
        present = {node: record for node, record in records.items() if _absence(record) is None}
        findings += _code_mismatch(path, present, hostnames)
    return findings


def judge_paths(per_node: Mapping[int, list[dict]], hostnames: Mapping[int, str]) -> list[Finding]:
    """path_missing where a --check-path is absent or unreadable; path_differs where the nodes
    see different kinds, file sizes, or directory entry counts and sizes."""
    findings: list[Finding] = []
    for path, records in _by_path(per_node).items():
        findings += _path_missing("--check-path", path, records, hostnames)
        present = {node: record for node, record in records.items() if _absence(record) is None}
        findings += _path_differs(path, present, hostnames)
    return findings


def _by_path(per_node: Mapping[int, list[dict]]) -> dict[str, dict[int, dict]]:
    """path -> node -> that node's record, in the order the paths were given."""
    by_path: dict[str, dict[int, dict]] = {}
    for node in sorted(per_node):
        for record in per_node[node]:
            by_path.setdefault(record["path"], {})[node] = record
    return by_path


def _absence(record: Mapping[str, Any]) -> str | None:
    """'missing', 'unreadable (Permission denied)', or None when the node sees the path."""
    if record.get("kind") == "missing":
        return "missing"
    if record.get("kind") in ("unreadable", "unknown") or record.get("readable") is False:
        return f"unreadable ({record['error']})" if record.get("error") else "unreadable"
    return None


def _path_missing(
    flag: str, path: str, records: Mapping[int, dict], hostnames: Mapping[int, str]
) -> list[Finding]:
    states = {node: state for node, record in records.items() if (state := _absence(record))}
    if not states:
        return []
    by_state: dict[str, list[int]] = {}
    for node, state in states.items():
        by_state.setdefault(state, []).append(node)
    where = "; ".join(f"{state} on {_nodes_text(nodes, hostnames)}" for state, nodes in by_state.items())
    seen = len(records) - len(states)
    tail = (
        ("the other node sees it" if seen == 1 else f"the other {seen:,} nodes see it")
        if seen
        else "no node sees it"
    )
    nodes = sorted(states)
    return [
        make_finding(
            "path_missing",
            f"{flag} {path} is {where}; {tail}",
            nodes=nodes,
            evidence={
                "path": path,
                "flag": flag,
                "state_by_node": states,
                "seen_on": sorted(set(records) - set(states)),
            },
            fix=f"Mount or sync {path} on {_nodes_text(nodes, hostnames)}: `ls -ld {path}` and "
            f"`findmnt -T {path}` there show whether a mount did not come up or permissions differ; "
            "or copy it from a node that has it.",
        )
    ]


# --- code_mismatch -----------------------------------------------------------------------------


def _code_mismatch(path: str, present: Mapping[int, dict], hostnames: Mapping[int, str]) -> list[Finding]:
    if len(present) < 2:
        return []
    limit = _common_limit(present.values())
    majority = odd_ones_out(_code_values(present, limit))
    if majority.agree:
        return []
    files = _differing_files(list(present.values()), limit)
    if majority.tie:
        message = _code_tie_text(path, present, majority, hostnames, files)
    else:
        message = _code_odd_text(path, present, majority, hostnames, limit)
    partial = _partial_text(present, hostnames)
    return [
        make_finding(
            "code_mismatch",
            f"{message}{partial}",
            nodes=majority.differing,
            evidence=_code_evidence(path, present, majority, files),
            fix=_code_fix(path, present, majority, hostnames),
        )
    ]


# The common stretch of the walk every record covers file by file: None when every record
# lists all of its files; otherwise the walk key of the last file the shortest list holds.
_Limit = tuple[str, ...] | None


def _common_limit(records: Any) -> _Limit:
    bounds = [_bound(record) for record in records]
    known = [bound for bound in bounds if bound is not None]
    return min(known) if known else None


def _bound(record: Mapping[str, Any]) -> _Limit:
    if record.get("complete", True) and not record.get("files_capped"):
        return None
    return max((_walk_key(rel) for rel in record.get("files", {})), default=())


def _within(files: Mapping[str, str], limit: _Limit) -> tuple[tuple[str, str], ...]:
    keys = [rel for rel in files if limit is None or _walk_key(rel) <= limit]
    return tuple((rel, files[rel]) for rel in sorted(keys, key=_walk_key))


def _code_values(present: Mapping[int, dict], limit: _Limit) -> dict[int, Any]:
    """What the nodes are compared by: the overall digest when every walk finished (a cut walk's
    digest covers less, so it would differ from a whole one), else what they all cover."""
    if all(record.get("complete", True) for record in present.values()):
        return {node: record["digest"] for node, record in present.items()}
    return {
        node: (record["kind"], record.get("tree"), _within(record.get("files", {}), limit))
        for node, record in present.items()
    }


def _differing_files(records: list[dict], limit: _Limit) -> list[str]:
    """Files (in walk order) whose digest is not the same in every record (absent counts)."""
    maps = [record.get("files", {}) for record in records if record.get("kind") in ("git", "tree")]
    if len({record.get("kind") for record in records}) > 1:
        return []  # a git record lists dirty files, a tree record all of them: not comparable
    names = sorted({rel for files in maps for rel in files}, key=_walk_key)
    names = [rel for rel in names if limit is None or _walk_key(rel) <= limit]
    return [rel for rel in names if len({files.get(rel) for files in maps}) > 1]


def _code_odd_text(
    path: str, present: Mapping[int, dict], majority: Majority, hostnames: Mapping[int, str], limit: _Limit
) -> str:
    agree = majority.groups[majority.majority]
    reference = present[agree[0]]
    parts = [
        _said_of(nodes, hostnames, _code_difference(present[nodes[0]], reference, limit))
        for value, nodes in majority.groups.items()
        if value != majority.majority
    ]
    return f"--code {path} differs from {_others(len(agree))}: {'; '.join(parts)}"


def _code_difference(record: dict, reference: dict, limit: _Limit) -> str:
    """'has HEAD 1a2b3c4d5e6f instead of 0f9e8d7c6b5a and different uncommitted or untracked
    files: a.py' -- what one odd record has that the majority's does not."""
    if record["kind"] != reference["kind"]:
        # a git work tree walked as a plain directory says why (git missing, dubious ownership)
        why = next((f" ({r['note']})" for r in (record, reference) if r.get("note")), "")
        return f"is {_KIND_TEXT[record['kind']]} where the others have {_KIND_TEXT[reference['kind']]}{why}"
    parts = []
    if record["kind"] == "git" and record.get("tree") != reference.get("tree"):
        parts.append(f"HEAD {_short(record['head'])} instead of {_short(reference['head'])}")
    files = _differing_files([record, reference], limit)
    if files:
        what = "uncommitted or untracked files" if record["kind"] == "git" else "files"
        parts.append(f"different {what}: {_files_text(files)}")
    if not parts:
        compared = len(_within(record.get("files", {}), limit))
        parts.append(f"a different digest, though the first {compared:,} files listed agree")
    return "has " + " and ".join(parts)


_KIND_TEXT = {"git": "a git work tree", "tree": "a plain directory (no git)"}


def _code_tie_text(
    path: str, present: Mapping[int, dict], majority: Majority, hostnames: Mapping[int, str], files: list[str]
) -> str:
    parts = [_said_of(nodes, hostnames, _code_state(present[nodes[0]])) for nodes in majority.groups.values()]
    text = f"--code {path} differs between nodes and no majority tells which node is odd: {'; '.join(parts)}"
    return f"{text}; files that differ: {_files_text(files)}" if files else text


def _code_state(record: dict) -> str:
    """'has HEAD 1a2b3c4d5e6f (clean)' or 'has 1,204 files (digest 0a1b2c3d4e5f)'."""
    if record["kind"] == "git":
        changed, untracked = (
            _count(record["changed"], "changed file"),
            _count(record["untracked"], "untracked file"),
        )
        dirty = f"dirty: {changed}, {untracked}"
        return f"has HEAD {_short(record['head'])} ({dirty if record['dirty'] else 'clean'})"
    return f"has {_count(record['digested'], 'file')} (digest {_short(record['digest'])})"


def _partial_text(present: Mapping[int, dict], hostnames: Mapping[int, str]) -> str:
    cut = sorted(node for node, record in present.items() if not record.get("complete", True))
    if not cut:
        return ""
    return (
        f" (compared over the files every node digested: the walk stopped at its time budget on "
        f"{_nodes_text(cut, hostnames)})"
    )


def _code_evidence(path: str, present: Mapping[int, dict], majority: Majority, files: list[str]) -> dict:
    evidence: dict[str, Any] = {
        "path": path,
        "digest_by_node": {node: _short(record["digest"]) for node, record in present.items()},
        "kind_by_node": {node: record["kind"] for node, record in present.items()},
        "majority_nodes": [] if majority.tie else majority.groups[majority.majority],
        "differing_files": files[:20],
    }
    heads = {node: record["head"] for node, record in present.items() if record["kind"] == "git"}
    if heads:
        evidence["head_by_node"] = heads
    if not all(record.get("complete", True) for record in present.values()):
        evidence["digested_by_node"] = {node: record.get("digested") for node, record in present.items()}
    return evidence


def _code_fix(
    path: str, present: Mapping[int, dict], majority: Majority, hostnames: Mapping[int, str]
) -> str:
    where = _nodes_text(majority.differing, hostnames)
    if majority.tie:
        source, again, host = "the node whose code you mean to run", "it", "GOOD_HOST"
    else:
        good = majority.groups[majority.majority][0]
        source = again = node_text(good, hostnames)
        host = hostnames.get(good, "GOOD_HOST")
    shared = "or keep the code on a filesystem every node mounts."
    if any(record["kind"] == "git" for record in present.values()):
        return (
            f"Sync the code on {where}: `git -C {path} status` and `git -C {path} log -1` there show "
            f"how it differs from {source}; check out the same commit and commit, stash or drop local "
            f"changes, or rsync the tree from {again}, {shared}"
        )
    return f"Sync {path} on {where} from {source} (rsync -a --delete {host}:{path}/ {path}/), {shared}"


# --- path_differs ------------------------------------------------------------------------------


def _path_differs(path: str, present: Mapping[int, dict], hostnames: Mapping[int, str]) -> list[Finding]:
    if len(present) < 2:
        return []
    kinds = odd_ones_out({node: record["kind"] for node, record in present.items()})
    if not kinds.agree:
        return [_differs_finding(path, present, kinds, hostnames, _kind_seen, "")]
    kind = kinds.majority
    if kind == "file":
        values = {node: (record["size"],) for node, record in present.items()}
        scope = ""
    elif kind == "dir":
        values, scope = _dir_values(present, hostnames)
    else:
        return []  # sockets, devices: nothing to count
    majority = odd_ones_out(values)
    if majority.agree:
        return []
    return [_differs_finding(path, present, majority, hostnames, _seen_text, scope)]


def _dir_values(present: Mapping[int, dict], hostnames: Mapping[int, str]) -> tuple[dict[int, Any], str]:
    """(entries, bytes) per node over the whole tree when every listing finished, else over the
    top levels every node listed whole (a cut listing's totals count less, not differently)."""
    if all(record["complete"] for record in present.values()):
        return {node: (record["entries"], record["bytes"]) for node, record in present.items()}, ""
    levels = min(len(record["level_entries"]) for record in present.values())
    cut = [node for node, record in present.items() if not record["complete"]]
    scope = (
        f" (a partial comparison, over the top {levels} level{'s' if levels != 1 else ''} of the tree: "
        f"the listing stopped at its time budget or entry limit on {_nodes_text(cut, hostnames)})"
    )
    if not levels:
        return {}, scope
    return {
        node: (sum(record["level_entries"][:levels]), sum(record["level_bytes"][:levels]))
        for node, record in present.items()
    }, scope


def _seen_text(value: tuple[int, ...]) -> str:
    """(1204, 5_600_000_000) -> '1,204 entries (5.22 GiB)'; (4096,) -> '4 KiB (4,096 bytes)'."""
    if len(value) == 1:
        return f"{format_bytes(value[0])} ({value[0]:,} bytes)"
    entries, total = value
    return f"{_count(entries, 'entry')} ({format_bytes(total)})"


_KIND_SEEN = {"file": "a file", "dir": "a directory", "other": "neither a file nor a directory"}


def _kind_seen(kind: str) -> str:
    return _KIND_SEEN.get(kind, kind)


def _differs_finding(
    path: str,
    present: Mapping[int, dict],
    majority: Majority,
    hostnames: Mapping[int, str],
    show: Callable[[Any], str],
    scope: str,
) -> Finding:
    """'node 3 (h3) sees 1,204 entries (5.22 GiB), the other 7 nodes 1,280 entries (5.4 GiB)'."""
    seen = {
        value: _said_of(nodes, hostnames, f"sees {show(value)}") for value, nodes in majority.groups.items()
    }
    if majority.tie:
        head = f"--check-path {path} differs between nodes and no majority tells which node is odd"
        text = f"{head}: {', '.join(seen.values())}"
    else:
        odd = [text for value, text in seen.items() if value != majority.majority]
        agree = len(majority.groups[majority.majority])
        text = f"--check-path {path} differs: {', '.join(odd)}; {_others(agree)} {show(majority.majority)}"
    return make_finding(
        "path_differs",
        text + scope,
        nodes=majority.differing,
        evidence=_path_evidence(path, present),
        fix=f"Compare {path} on {_nodes_text(majority.differing, hostnames)} with the other nodes "
        f"(`ls -la {path}`, `du -s {path}`, `findmnt -T {path}`): a different mount, a copy that did not "
        "finish, or files written on one node only; sync it or use one shared filesystem.",
    )


def _path_evidence(path: str, present: Mapping[int, dict]) -> dict[str, Any]:
    keys = ("kind", "size", "entries", "bytes", "complete", "level_entries")
    evidence: dict[str, Any] = {"path": path}
    for key in keys:
        values = {node: record[key] for node, record in present.items() if key in record}
        if values:
            evidence[f"{key}_by_node"] = values
    newest = {node: record.get("newest_mtime") or record.get("mtime") for node, record in present.items()}
    evidence["newest_mtime_by_node"] = {node: _iso(stamp) for node, stamp in newest.items() if stamp}
    return evidence


# --- text --------------------------------------------------------------------------------------


def _nodes_text(nodes: list[int], hostnames: Mapping[int, str]) -> str:
    """'node 1 (a)', 'node 1 (a) and node 3 (c)', 'node 1 (a), node 2 (b) and node 3 (c)'."""
    parts = [node_text(node, hostnames) for node in nodes]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


_PLURAL_VERBS = {"has": "have", "is": "are", "sees": "see"}


def _said_of(nodes: list[int], hostnames: Mapping[int, str], predicate: str) -> str:
    """'node 1 (a) has X', 'node 1 (a) and node 2 (b) have X': the verb agrees with the nodes."""
    verb, _, rest = predicate.partition(" ")
    if len(nodes) > 1:
        verb = _PLURAL_VERBS.get(verb, verb)
    return f"{_nodes_text(nodes, hostnames)} {verb} {rest}"


def _count(number: int, noun: str) -> str:
    """'1 file', '1,204 files', '2 entries'."""
    if number == 1:
        return f"1 {noun}"
    return f"{number:,} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def _others(count: int) -> str:
    return "the other node" if count == 1 else f"the other {count:,} nodes"


def _files_text(files: list[str]) -> str:
    shown = ", ".join(files[:SHOWN_FILES])
    more = len(files) - SHOWN_FILES
    return f"{shown} and {more:,} more" if more > 0 else shown


def _short(digest: str | None) -> str:
    return (digest or "none")[:DIGEST_HEX]


def _iso(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
