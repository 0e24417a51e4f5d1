"""The catalogue over what an incomplete bench run has: each rank's last error, in its words.

The supervisor's partial report says which ranks crashed, hung or lost a collective; the
message a rank left may also say why (CUDA out of memory, no socket interface, an IB
completion error). Those causes are added before the supervisor's own findings; crashes and
symptoms are not, since the supervisor already reports them from the ranks' states.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from nccldoctor.explain.engine import explain
from nccldoctor.explain.events import scan
from nccldoctor.explain.reader import Source
from nccldoctor.explain.signatures import CAUSE, SIGNATURES
from nccldoctor.findings import Finding, Severity

# A code can have cause and symptom signatures (peer_unreachable: a Gloo connect timeout, a peer
# gone): a finding counts when one of its lines is a cause's.
CAUSE_SOURCES = frozenset(s.source for s in SIGNATURES if s.role == CAUSE)
JUDGED_CAUSES = frozenset({"version_mismatch"})  # judged across hosts, no signature of its own


def explain_rank_errors(errors: Mapping[int, str], logs: Iterable[Path] = ()) -> list[Finding]:
    """Specific causes in the ranks' last error messages (and in log files, such as a captured
    NCCL log), attributed to their ranks; [] when the catalogue names none."""
    sources = [Source(f"rank {rank}'s error", data=_prefixed(rank, text)) for rank, text in errors.items()]
    sources += [Source(str(path), path) for path in logs if path.is_file()]
    if not sources:
        return []
    findings = explain(scan(sources))
    return [f for f in findings if _is_cause(f) and f.severity is Severity.FAIL]


def _is_cause(finding: Finding) -> bool:
    sources = finding.evidence.get("sources", [])
    return finding.code in JUDGED_CAUSES or any(source in CAUSE_SOURCES for source in sources)


def _prefixed(rank: int, text: str) -> bytes:
    # torchrun's own prefix, so that attribution names the rank on every line of the message
    return "".join(f"[rank{rank}]: {line}\n" for line in text.splitlines()).encode("utf-8", "replace")
