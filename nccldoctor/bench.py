"""`torchrun ... -m nccldoctor.bench [options]`: measure, judge, report, exit with the verdict.

This entry point is deliberately thin: it starts remembering signals before torch is
imported (that takes seconds, and torchrun may SIGTERM a slow rank in the meantime), then
hands over to nccldoctor.runner, where the run itself lives.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from nccldoctor.signals import EarlySignals


def main(argv: list[str] | None = None) -> NoReturn:
    early = EarlySignals().install()
    # These import torch: only after the signals are held.
    from nccldoctor.probes import plan
    from nccldoctor.reports import make_sinks
    from nccldoctor.runner import run

    code = run(argv, plan, make_sinks, early)
    # The report is on disk. Leave now: interpreter teardown with torch's threads can take
    # seconds, and a SIGTERM from torchrun (another rank already exited) arriving after
    # Python restored the default handlers would turn this rank's exit code into -15.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
