"""Secrets never leave the tool: one redaction for every output (stdlib only, no torch).

Two kinds of secret reach a report: a variable whose NAME says it is one (HF_TOKEN: masked
whole, `is_secret`), and a credential INSIDE an innocent value or a log line
(TORCH_HOME=https://user:token@host/..., `--password=...` on a launcher's command line, a key
pasted into a log). `redact_text` replaces the secret part of any text with MASK and keeps the
rest, because the rest is the diagnosis (the host of a URL, the option's name, the log line).
`scrub` applies both to every string of a nested structure (a report's dict), and
`redact_report` to a Report; the sinks get their report through it (reports.emit_all), the
raw files the tool copies go through `redact_file`, and `redacting_streams` covers whatever
else the process prints.

What must stay visible, because it is what the tool diagnoses: IP addresses, host names,
interface and HCA names (NCCL_IB_HCA=mlx5_0), NCCL_IB_PKEY (a partition key, not a secret),
paths, GPU UUIDs and git commit SHAs (40 hex digits, like a W&B key: that shape is masked only
where the key is named).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from nccldoctor.report import Report

MASK = "***"
# consistency.facts compares secret values across nodes by a digest with this prefix; the
# digest is not the secret, and masking it again would hide which nodes differ.
DIGEST_PREFIX = "masked:"

# A secret name: one of these words as a whole component of the name (split at _ . -), so
# API_KEY, HF_TOKEN and --db-password are secrets and NCCL_IB_PKEY (an InfiniBand partition
# key; hiding it would hide a classic misconfiguration), KEYBOARD or --tokens are not.
_SECRET_WORD = r"(?:TOKEN|SECRET|PASSW(?:OR)?D|PASSPHRASE|KEY|KEYS|APIKEY|CREDENTIALS?)"
_SECRET_NAME = re.compile(rf"(?:^|[_.-]){_SECRET_WORD}(?:[_.-]|$)", re.IGNORECASE)
# The same name as it appears inside text: whole components only, not the end of a longer word.
_NAME_IN_TEXT = rf"(?<![\w.-])(?:[A-Za-z0-9]+[_.-])*{_SECRET_WORD}(?:[_.-][A-Za-z0-9]+)*(?![\w-])"
# A value: quoted (the quotes stay), or up to white space or a separator.
_VALUE = r"(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"',;&]+)"

_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z ]*PRIVATE KEY-----")


def _masked_value(match: re.Match[str]) -> str:
    """name=value -> name=*** (quotes kept), leaving values that are masked already."""
    value = match["value"]
    quote = value[0] if value[:1] in "\"'" and len(value) > 1 else ""
    inner = value[1:-1] if quote else value
    if inner.startswith(DIGEST_PREFIX) or inner == MASK:
        return match[0]
    return f"{match['name']}{match['sep']}{quote}{MASK}{quote}"


_Replacement = str | Callable[[re.Match[str]], str]


@dataclass(frozen=True)
class Rule:
    """One shape of secret. `triggers`: lower-case words of which the text must hold one
    before the pattern runs (a pattern's scan costs tens of microseconds a line; most text,
    NCCL's log lines and explain's quotes, holds no trigger at all)."""

    triggers: tuple[str, ...]
    pattern: re.Pattern[str]
    replacement: _Replacement

    def apply(self, text: str, lowered: str) -> str:
        if any(word in lowered for word in self.triggers):
            return self.pattern.sub(self.replacement, text)
        return text


_NAME_TRIGGERS = ("token", "secret", "passw", "passphrase", "key", "credential")

# A replacement never matches its own rule again: redact_text(redact_text(x)) == redact_text(x).
RULES: tuple[Rule, ...] = (
    # PEM private keys (ssh, TLS): the whole block; a block cut off by the end of the text
    # (a log read line by line) loses everything after its BEGIN line.
    Rule(
        ("private key",),
        re.compile(
            r"(-----BEGIN [A-Z ]*PRIVATE KEY-----).*?(-----END [A-Z ]*PRIVATE KEY-----|(?=\n?\Z))", re.DOTALL
        ),
        lambda m: f"{m[1]}{MASK}{m[2] or ''}",
    ),
    # URL userinfo (RFC 3986 user:password@host): model hubs, git remotes, proxies, S3 gateways
    # put tokens there (TORCH_HOME=https://user:token@host/...). The host stays: it is useful.
    Rule(("@",), re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@]+@"), rf"\g<scheme>{MASK}@"),
    # HTTP auth headers pasted into logs (curl -v, requests debug): keep the scheme word.
    Rule(
        ("authorization",),
        re.compile(
            r"(?P<head>\b(?:Proxy-)?Authorization\s*[:=]\s*(?:(?:Bearer|Basic|Token|Digest)\s+)?)[^\s\"',]+",
            re.I,
        ),
        rf"\g<head>{MASK}",
    ),
    Rule(("bearer",), re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\g<head>{MASK}"),
    # Launcher options: --password=..., --hf-token ..., --api-key ..., --secret ... (a value
    # that is itself an option, --token --verbose, is not one).
    Rule(
        _NAME_TRIGGERS,
        re.compile(
            rf"(?P<name>(?<![\w-])--(?:[A-Za-z0-9]+[-_])*{_SECRET_WORD}(?:[-_][A-Za-z0-9]+)*)"
            rf"(?P<sep>=|\s+)(?P<value>(?!-){_VALUE})",
            re.IGNORECASE,
        ),
        _masked_value,
    ),
    # NAME=value and NAME: value inside longer text (env dumps, `export`, YAML, JSON "name":
    # "value", AWS credentials files: aws_secret_access_key = ...). A bare `key:` is left:
    # it is how errors name dictionary and store keys ("waiting for key: ...").
    Rule(
        _NAME_TRIGGERS,
        re.compile(
            rf"(?P<name>{_NAME_IN_TEXT}[\"']?)(?P<sep>\s*=\s*|(?<!\bkey)(?<!\bkeys)(?<!\bkey[\"'])\s*:\s*)"
            rf"(?P<value>{_VALUE})",
            re.IGNORECASE,
        ),
        _masked_value,
    ),
    # `wandb login KEY`: a W&B API key is 40 hex digits, the shape of a git commit, so only here.
    Rule(
        ("wandb",),
        re.compile(r"(?P<head>\bwandb\s+login\s+(?:--?[\w-]+\s+)*)[0-9a-fA-F]{40}\b"),
        rf"\g<head>{MASK}",
    ),
    # AWS access key ids (AKIA: long-term, ASIA: temporary STS credentials), AWS's documented shape.
    Rule(("akia", "asia"), re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
    # Hugging Face user access tokens: hf_ and 30+ letters and digits (34 in today's tokens).
    Rule(("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), MASK),
    # GitHub tokens: personal (ghp_), OAuth (gho_), user-to-server (ghu_), server (ghs_),
    # refresh (ghr_), and fine-grained personal tokens (github_pat_).
    Rule(
        ("gho_", "ghp_", "ghr_", "ghs_", "ghu_", "github_pat_"),
        re.compile(r"\b(?:gh[oprsu]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})\b"),
        MASK,
    ),
    # Slack tokens: xoxb- (bot), xoxp- (user), xoxa-/xoxr- (app, refresh), xoxs-, xoxo-.
    Rule(("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MASK),
)


# Every rule's trigger words in one pattern: an alternation of plain lower-case words, on text
# already lower-cased (no IGNORECASE), is the cheapest test that no rule can apply.
_ANY_TRIGGER = re.compile(
    "|".join(re.escape(word) for word in dict.fromkeys(w for r in RULES for w in r.triggers))
)


def is_secret(name: str) -> bool:
    """Whether a variable or key NAME says its value is a secret (then the value is masked whole)."""
    return bool(_SECRET_NAME.search(name))


def redact_text(text: str) -> str:
    """`text` with every credential the rules know replaced by MASK, the rest as it was."""
    lowered = text.lower()
    if not _ANY_TRIGGER.search(lowered):  # most text: one scan, no rule
        return text
    for rule in RULES:
        text = rule.apply(text, lowered)
    return text


def mask_value(name: str, value: str) -> str:
    """A named value: masked whole when the name is a secret's, else its credentials masked."""
    if is_secret(name) and value != MASK and not value.startswith(DIGEST_PREFIX):
        return MASK
    return redact_text(value)


def scrub(data: Any) -> Any:
    """A copy of nested dicts, lists and tuples with every string redacted: a dict entry whose
    key is a secret's name is masked whole, other strings (keys too) lose their credentials.
    Numbers, booleans and None pass as they are, a dataclass keeps its type with its fields
    scrubbed; other objects are rendered by str() when written, so they are scrubbed as text."""
    if isinstance(data, str):
        return redact_text(data)
    if isinstance(data, dict):
        return {scrub(key): _scrub_entry(key, value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(scrub(item) for item in data)
    if data is None or isinstance(data, (bool, int, float)):
        return data
    if dataclasses.is_dataclass(data) and not isinstance(data, type):  # keeps its type for the views
        fields = {f.name: scrub(getattr(data, f.name)) for f in dataclasses.fields(data) if f.init}
        return dataclasses.replace(data, **fields)
    text = str(data)
    cleaned = redact_text(text)
    return data if cleaned == text else cleaned


# A report's own field names that only look secret: `key` is a rule's key in the expectations
# evidence ("probes.all_reduce.min_busbw_gbps"), a dictionary key, never a key's value.
STRUCTURAL_NAMES = frozenset({"key", "keys"})


def _scrub_entry(key: Any, value: Any) -> Any:
    if isinstance(key, str) and isinstance(value, str) and key.lower() not in STRUCTURAL_NAMES:
        return mask_value(key, value)
    return scrub(value)


def redact_report(report: Report) -> Report:
    """The report with every string of its job, environment, rows, findings and sections
    scrubbed: what the sinks write and print (reports.emit_all calls it)."""
    from nccldoctor.findings import Finding
    from nccldoctor.rows import Row

    return dataclasses.replace(
        report,
        job=scrub(report.job),
        environment=scrub(report.environment),
        results=[_scrub_dataclass(row, Row) for row in report.results],
        findings=[_scrub_dataclass(finding, Finding) for finding in report.findings],
        sections=scrub(report.sections),
    )


def _scrub_dataclass(item: Any, kind: Any) -> Any:
    """A row or finding back from its scrubbed dict; the same object when nothing changed
    (the common case: rebuilding thousands of rows would cost more than checking them)."""
    data = item.to_dict()
    cleaned = scrub(data)
    return item if cleaned == data else kind.from_dict(cleaned)


def redact_lines(lines: Iterable[str]) -> Iterator[str]:
    """Lines with their credentials masked, a private key block that spans lines included
    (its BEGIN line says that the lines up to END are the key)."""
    in_block = False
    for line in lines:
        if in_block:
            in_block = not _PEM_END.search(line)
            yield f"{_PEM_END.search(line)[0]}\n" if not in_block else ""
            continue
        cleaned = redact_text(line)
        in_block = bool(_PEM_BEGIN.search(line)) and not _PEM_END.search(line)
        yield cleaned


def redact_file(source: Path, target: Path) -> None:
    """Copy a text file (an NCCL log) line by line with its credentials masked; bytes that are
    not UTF-8 are kept as escapes rather than failing the copy."""
    with (
        open(source, encoding="utf-8", errors="backslashreplace") as reader,
        open(target, "w", encoding="utf-8") as writer,
    ):
        writer.writelines(redact_lines(reader))


class RedactingStream:
    """A text stream that masks credentials in each write before passing it on (sys.stdout,
    sys.stderr): error lines, tracebacks and progress labels, not only the report's tables.
    Each write is redacted whole; print() hands a line's text in one write."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact_text(text))
        return len(text)  # what the caller handed over, as TextIO promises

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self._stream, name)


@contextlib.contextmanager
def redacting_streams() -> Iterator[None]:
    """sys.stdout and sys.stderr redacted for the duration of a block (a command, a rank)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(saved[0]), RedactingStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def install_redacting_streams() -> None:
    """For the rest of the process (a bench rank, which leaves by os._exit): no restoring."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)
