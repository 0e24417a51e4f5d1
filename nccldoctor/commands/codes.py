"""`nccldoctor codes`: the finding codes, their meaning and fix."""

from __future__ import annotations

import argparse

from nccldoctor.findings import CATALOG

HELP = "list the finding codes with meaning and fix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """It takes none."""


def run(args: argparse.Namespace) -> int:
    try:
        for spec in CATALOG.values():
            print(f"{spec.code} [{spec.severity.value}]\n  meaning: {spec.meaning}\n  fix: {spec.fix}")
    except BrokenPipeError:
        pass  # `nccldoctor codes | head`
    return 0
