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
