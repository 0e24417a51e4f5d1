"""A stand-in for torchrun in the `nccldoctor run` tests: it plays the ranks' part of the contract.

It writes each "rank's" exit code with the real writer (nccldoctor.exitstatus.record, with the
environment torchrun gives a rank) and exits as torchrun would. The scenario is JSON in
FAKE_TORCHRUN:
  codes         the code each local rank leaves; null: that rank leaves none (killed)
  exit          this fake torchrun's own exit status
  restart       TORCHELASTIC_RESTART_COUNT for the ranks (default 0)
  wait_signal   wait for a signal first (at most 30 s); on one, every rank leaves 3, as the
                bench's ranks do when stopped
  argv_file     where to write the command line it was given, one argument a line
  ready_file    touched once its signal handlers are in place
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

from nccldoctor import exitstatus

scenario = json.loads(os.environ["FAKE_TORCHRUN"])
if "argv_file" in scenario:
    Path(scenario["argv_file"]).write_text("\n".join(sys.argv[1:]))
codes = scenario.get("codes", [])
got: list[int] = []
if scenario.get("wait_signal"):
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: got.append(signum))
    Path(scenario["ready_file"]).touch()
    give_up = time.monotonic() + 30
    while not got and time.monotonic() < give_up:
        time.sleep(0.05)
    codes = [3 for _ in codes] if got else []  # no signal: nobody wrote anything
    Path(scenario["ready_file"]).write_text(",".join(signal.Signals(s).name for s in got))
for local_rank, code in enumerate(codes):
    if code is None:
        continue
    os.environ.update(
        LOCAL_RANK=str(local_rank),
        LOCAL_WORLD_SIZE=str(len(codes)),
        TORCHELASTIC_RESTART_COUNT=str(scenario.get("restart", 0)),
    )
    exitstatus.record(code)
sys.exit(scenario.get("exit", 0))
