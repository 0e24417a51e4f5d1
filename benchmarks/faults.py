"""The heavier fault runs on the emulated cluster (root), left out of CI's 20 minutes:

    python benchmarks/faults.py

Runs tests/cluster/test_faults_cluster.py (`pytest -m heavy`): SIGINT to one node's torchrun in
the middle of a settings sweep (a partial report naming the signal, the node and the sweep's
step; no process of the run left on any node 10 s later), and a node cut off the network in the
middle of the all-reduces (the other node names it within the 5 s silence and exits). Prints each
scenario's verdict and wall time; exit 0 when all pass. Baseline: none, these are pass/fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    command = [sys.executable, "-m", "pytest", "-m", "heavy", "-q", "-rA", "--durations=0"]
    command.append(str(ROOT / "tests" / "cluster" / "test_faults_cluster.py"))
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
