"""The `nccldoctor` subcommands: peers in nccldoctor.commands, dispatched by nccldoctor.cli."""

import subprocess
import sys

import pytest

from nccldoctor.commands import COMMANDS, load


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_command_is_a_module_with_help_arguments_and_run(name):
    command = load(name)
    assert command.HELP and "\n" not in command.HELP
    assert callable(command.add_arguments) and callable(command.run)


def test_the_cli_and_its_commands_load_without_torch():
    # torch takes seconds to import: preflight answers in less, and must stay that way.
    code = (
        "import sys; from nccldoctor.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert probe.stdout.strip() == "False"


def test_importing_the_bench_entry_loads_no_torch():
    # main() installs EarlySignals first: torchrun may SIGTERM a rank during its torch import.
    code = "import sys, nccldoctor.bench; print('torch' in sys.modules)"
    probe = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert probe.stdout.strip() == "False"


def show(path):
    import argparse

    from nccldoctor.errors import UsageError

    with pytest.raises(UsageError) as error:
        load("show").run(argparse.Namespace(report=str(path), quiet=True))
    return str(error.value)


def test_show_names_the_keys_a_json_file_lacks_in_words(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(
        '{"schema_version": 1, "environment": {}, "results": [], "findings": [], "complete": true}'
    )
    assert show(path) == (
        f"show: {path} is not a nccldoctor report.json: it has no job (the ranks, nodes and backend) "
        "and created (when the report was written)"
    )
    path.write_text("[1, 2]")
    assert show(path).endswith("it holds a JSON list, not a report's object")
    path.write_text("{")
    assert "it is not JSON" in show(path)


# -- `nccldoctor bench` ------------------------------------------------------------------------


def test_nccldoctor_help_lists_every_command_and_how_the_bench_runs():
    from nccldoctor.cli import build_parser

    text = build_parser().format_help()
    assert all(name in text for name in COMMANDS) and "bench" in COMMANDS
    assert "torchrun --standalone --nproc-per-node N -m nccldoctor.bench [flags]" in " ".join(text.split())


def test_bench_without_torchrun_gives_the_torchrun_command_on_one_line(monkeypatch):
    from nccldoctor import preflight
    from nccldoctor.cli import parse_args
    from nccldoctor.errors import UsageError

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(preflight, "count_gpus", lambda: preflight.Gpus(physical=0, visible=0))
    args = parse_args(["bench", "-e", "1M", "--out", "my out"])
    assert args.forwarded == ["-e", "1M", "--out", "my out"]  # the bench's flags, for its own parser
    with pytest.raises(UsageError) as error:
        load("bench").run(args)
    line = str(error.value)
    assert "\n" not in line
    assert "torchrun --standalone --nproc-per-node 2 -m nccldoctor.bench -e 1M --out 'my out'" in line


def test_the_torchrun_command_has_one_rank_per_visible_gpu():
    from nccldoctor.commands.bench import torchrun_command

    assert torchrun_command(["--quiet"], gpus=8) == (
        "torchrun --standalone --nproc-per-node 8 -m nccldoctor.bench --quiet"
    )


def test_bench_under_torchrun_runs_the_bench_with_its_flags(monkeypatch):
    from nccldoctor.cli import parse_args
    from nccldoctor.commands import bench

    started = []

    def main(argv):  # the real one exits the process with the run's code
        started.append(argv)
        raise SystemExit(0)

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(bench, "main", main)
    with pytest.raises(SystemExit):
        load("bench").run(parse_args(["bench", "--", "--probes", "all_reduce"]))
    assert started == [["--probes", "all_reduce"]]


def test_other_commands_still_refuse_unknown_arguments():
    from nccldoctor.cli import parse_args
    from nccldoctor.errors import UsageError

    with pytest.raises(UsageError, match="unrecognized arguments: --bogus"):
        parse_args(["show", "somewhere", "--bogus"])
