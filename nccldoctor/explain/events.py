"""Candidate lines -> events: which signature a line matches, who wrote it, when."""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nccldoctor.explain import blocks
from nccldoctor.explain.attribution import Who, attribute, timestamp
from nccldoctor.explain.reader import Line, Source, candidate_lines
from nccldoctor.explain.signatures import ANCHORS, CRASH, FAILURE_HINTS, IB_STATUS, SIGNATURES, Signature

KILL_SIGNALS = {"SIGKILL", "SIGTERM"}
PROC_KEYWORDS = ("Proxy Service", " nranks ")  # lines that tell an NCCL process's rank
KEEP_ERROR_LINES = 8  # the last unexplained error lines shown when nothing matched
PREFILTER = tuple(a.encode() for a in ANCHORS)
# (keyword, index of its signature): one flat pass per line finds the signatures worth a regex
_PAIRS = tuple((kw, i) for i, s in enumerate(SIGNATURES) for kw in s.keywords)
MAX_EVENTS_PER_CODE = 2000  # distinct events kept per code; beyond, only counted


@dataclass
class Event:
    code: str
    role: str
    name: str  # the signature's (or "torchrun_block")
    message: str
    source: str
    fix: str | None
    line: Line
    order: int  # global reading order: the tie-breaker and the clock of untimed logs
    who: Who
    fields: dict[str, str] = field(default_factory=dict)
    root: bool = False  # torchrun named it the root cause (first observed failure)
    named: set[int] = field(default_factory=set)  # more ranks the message names
    count: int = 1  # lines with the same message from the same writer

    @property
    def ranks(self) -> set[int]:
        return self.named | ({self.who.rank} if self.who.rank is not None else set())

    @property
    def where(self) -> str:
        return f"{self.line.file}:{self.line.number}"


@dataclass
class Scan:
    events: list[Event] = field(default_factory=list)
    error_lines: deque[str] = field(default_factory=lambda: deque(maxlen=KEEP_ERROR_LINES))
    failure_hinted: bool = False
    ranks: set[int] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    proc_rank: dict[tuple[str, str], int] = field(default_factory=dict)  # NCCL (host, pid) -> rank
    seen: dict[tuple, Event] = field(default_factory=dict)
    per_code: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)  # matches past MAX_EVENTS_PER_CODE
    first_time: tuple[float, str] | None = None  # (sortable seconds, the stamp as written)
    last_time: tuple[float, str] | None = None
    order: int = 0


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _render(signature: Signature, fields: dict[str, str]) -> str:
    values = _Fields({k: v for k, v in fields.items() if v is not None})
    values["status_meaning"] = IB_STATUS.get(values.get("status", ""), "see ibv_wc_status")
    values["op_text"] = f" (rank {values['rank']} ran {values['op']})" if "op" in values else ""
    values["signal_text"] = f", {values['signal']}" if "signal" in values else ""
    return signature.message.format_map(values)


_ALIAS = re.compile(r"^(\w+?)\d$")  # one field in several alternatives of a regex: peer2 -> peer


def match_line(text: str) -> tuple[Signature, dict[str, str]] | None:
    """The first signature whose keyword and regex match the line (specific ones come first)."""
    hits = {i for kw, i in _PAIRS if kw in text}
    for i in sorted(hits):
        signature = SIGNATURES[i]
        if m := signature.pattern.search(text):
            fields: dict[str, str] = {}
            for name, value in m.groupdict().items():
                if value is not None:
                    alias = _ALIAS.match(name)
                    fields.setdefault(alias[1] if alias else name, value)
            if signature.when is None or signature.when(fields):
                return signature, fields
    return None


# NCCL lines that say which rank a process is: its other lines are that rank's too.
_PROC_RANK = re.compile(r"\[Proxy Service (\d+)\]|from rank (\d+)|\bcomm 0x[0-9a-f]+ rank (\d+) nranks")


def scan(sources: Iterable[Source]) -> Scan:
    state = Scan()
    for source in sources:
        _scan_source(state, source)
    return state


# torchrun --log-dir: <dir>/<run_id>/attempt_<n>/<local_rank>/{stdout,stderr}.log
_LOG_DIR_FILE = re.compile(r"attempt_\d+[/\\](\d+)[/\\](?:stdout|stderr|error)\.(?:log|json)")


# torchrun stopping the other workers of its node after one failed (elastic/multiprocessing/api.py)
_AGENT_STOPS = re.compile(r"Sending process (\d+) closing signal|Unable to shutdown process (\d+) via")
_TORCHRUN_LINES = frozenset({"elastic_failed", "elastic_exit"})


@dataclass
class _Agent:
    """What one file's torchrun agent said about its workers, by pid."""

    stopped: set[str] = field(default_factory=set)  # the workers it signalled itself
    reports: dict[str, Event] = field(default_factory=dict)  # its "failed (exitcode: ...)" lines

    def read(self, text: str, event: Event | None) -> None:
        if m := _AGENT_STOPS.search(text):
            self.stopped.add(m[1] or m[2])
        if event is not None and event.name in _TORCHRUN_LINES and "pid" in event.fields:
            self.reports[event.fields["pid"]] = event


def _scan_source(state: Scan, source: Source) -> None:
    reader = blocks.BlockReader()
    agent = _Agent()
    m = _LOG_DIR_FILE.search(source.name)
    file_local_rank = int(m[1]) if m else None  # what its unprefixed lines are
    file_time: float | None = None  # the last timestamp seen in this file: untimed lines inherit it
    for line in candidate_lines(source, PREFILTER):
        state.order += 1
        who = attribute(line.text)
        if who.rank is None and who.local_rank is None:
            who.local_rank = file_local_rank
        if who.time is not None:
            file_time = who.time
            _span(state, line.text, who.time)
        else:
            who.time = file_time  # refined from the lines just before it if a signature matches
        _note_who(state, who)
        _learn_proc_rank(state, who, line.text)
        entry = reader.feed(line.number, line.text)
        if entry is not None:
            _add_block_event(state, agent, entry, _block_event(entry, source, state.order))
        if reader.section is not None and blocks.is_field(line.text):
            continue  # a field of torchrun's block, not a message of its own
        agent.read(line.text, _match(state, line, who))
    entry = reader.close()
    if entry is not None:
        _add_block_event(state, agent, entry, _block_event(entry, source, state.order))


def _add_block_event(state: Scan, agent: _Agent, entry: blocks.Entry, event: Event) -> None:
    _note_who(state, event.who)
    if _stopped_by_torchrun(entry, agent):
        return  # torchrun lists the workers it stopped itself: not a failure of their own
    report = agent.reports.pop(entry.pid or "", None)
    if report is not None:  # the agent's one-line report of this failure: the rank is the block's
        report.who.rank = event.who.rank
        report.who.host = report.who.host or event.who.host
    state.events.append(event)


def _stopped_by_torchrun(entry: blocks.Entry, agent: _Agent) -> bool:
    """A worker torchrun signalled after another failed ("Sending process N closing signal
    SIGTERM"): it lists it among the failures with that signal, never as the root cause."""
    signalled = entry.signal in KILL_SIGNALS or entry.exitcode in (-9, -15)
    return signalled and not entry.root and entry.pid in agent.stopped


def _learn_proc_rank(state: Scan, who: Who, text: str) -> None:
    if who.host and who.pid and (m := _PROC_RANK.search(text)):
        rank = int(next(g for g in m.groups() if g is not None))
        state.proc_rank.setdefault((who.host, who.pid), rank)
        state.ranks.add(rank)


def _match(state: Scan, line: Line, who: Who) -> Event | None:
    """The new event this line makes (None: no signature, a repeat, or past the cap)."""
    found = match_line(who.rest)
    if found is None:
        if any(h in line.text for h in FAILURE_HINTS):
            state.failure_hinted = True
            state.error_lines.append(f"{line.file}:{line.number}: {line.text.strip()[:300]}")
        return None
    signature, fields = found
    _fill_who(who, fields)
    if signature.role == "fact" and who.host is None:  # a bare "NCCL version" printf: the process
        who.host = _last_nccl_host(line.before)  # printed its NCCL lines just before it
    named = {int(r) for r in signature.names_ranks.findall(who.rest)} if signature.names_ranks else set()
    if signature.role != "fact" and any(h in line.text for h in FAILURE_HINTS):
        state.failure_hinted = True
    key = _key(signature, who, fields, named)
    if key in state.seen:  # the same message again from the same rank: counted, not kept
        state.seen[key].count += 1
        return None
    if state.per_code[signature.code] >= MAX_EVENTS_PER_CODE:  # memory stays flat on huge logs
        state.dropped[signature.code] += 1
        return None
    state.per_code[signature.code] += 1
    if signature.role != "fact":  # only new events need their time to the line
        _context_time(state, line, who)
    state.seen[key] = event = Event(
        signature.code,
        signature.role,
        signature.name,
        _render(signature, fields),
        signature.source,
        signature.fix,
        line,
        state.order,
        who,
        fields,
        named=named,
    )
    state.events.append(event)
    return event


_VOLATILE = frozenset({"port", "timeout_ms", "size"})  # differ line to line for one cause


def _key(signature: Signature, who: Who, fields: dict[str, str], named: set[int]) -> tuple:
    kept = tuple(sorted((k, v) for k, v in fields.items() if k not in _VOLATILE))
    return (signature.name, who.rank, who.local_rank, who.host, who.pid, kept, tuple(sorted(named)))


def _context_time(state: Scan, line: Line, who: Who) -> None:
    """A line without its own stamp (a traceback's last line) takes the nearest one before it."""
    if timestamp(line.text) is not None or not line.before:
        return
    stamps = list(_STAMP.finditer(line.before))
    if stamps:
        who.time = timestamp(stamps[-1][0])
        if who.time is not None:
            _span(state, stamps[-1][0], who.time)


def _last_nccl_host(before: str) -> str | None:
    hosts = [attribute(text).host for text in before.splitlines()[-3:]]
    return next((h for h in reversed(hosts) if h), None)


def _fill_who(who: Who, fields: dict[str, str]) -> None:
    """A rank or host the message itself names, when no prefix said it."""
    if who.rank is None and fields.get("rank", "").isdigit():
        who.rank = int(fields["rank"])
    if who.local_rank is None and fields.get("local_rank", "").isdigit():
        who.local_rank = int(fields["local_rank"])
    if who.host is None and fields.get("host"):
        who.host = fields["host"]


def _note_who(state: Scan, who: Who) -> None:
    if who.rank is not None:
        state.ranks.add(who.rank)
    if who.host is not None:
        state.hosts.add(who.host)


_STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T_]\d\d:\d\d:\d\d(?:[.,]\d+)?|\b[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+")


def _span(state: Scan, text: str, when: float) -> None:
    m = _STAMP.search(text)
    if m is None:
        return
    if state.first_time is None or when < state.first_time[0]:
        state.first_time = (when, m[0])
    if state.last_time is None or when > state.last_time[0]:
        state.last_time = (when, m[0])


def _block_event(entry: blocks.Entry, source: Source, order: int) -> Event:
    # Killed from outside (SIGKILL: OOM killer, scheduler; SIGTERM) vs died of itself (SIGSEGV,
    # SIGABRT - also torch's own abort after a watchdog timeout - or an exit code).
    code = "rank_killed" if entry.signal in KILL_SIGNALS or entry.exitcode in (-9, -15) else "rank_crashed"
    what = entry.signal or f"exit code {entry.exitcode}"
    host = entry.fields.get("host")
    message = f"rank {entry.rank} on {host} failed: {what}"
    if entry.root:
        message += " (torchrun: first observed failure)"
    who = Who(rank=entry.rank, local_rank=entry.local_rank, host=host, rest="")
    when = entry.fields.get("time", "")
    if when:
        who.time = attribute(when).time
    line = Line(source.name, entry.line_numbers[0], " | ".join(s.strip() for s in entry.lines))
    fields: dict[str, Any] = {"exitcode": str(entry.exitcode), "signal": entry.signal or ""}
    return Event(
        code, CRASH, "torchrun_block", message, blocks.SOURCE, None, line, order, who, fields, entry.root
    )


def iter_matches(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """(code, fields) for each line a signature matches: for tests and the bench's partial report."""
    for text in lines:
        found = match_line(attribute(text).rest)
        if found:
            yield found[0].code, found[1]
