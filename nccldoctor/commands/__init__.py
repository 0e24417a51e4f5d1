"""The `nccldoctor` subcommands, one module each, registered here by name.

A command module has HELP (one line), add_arguments(parser) and run(args) -> int (the exit
code). Adding a command is one module and one line in COMMANDS. Modules are named, not
imported, here; the one that runs imports what it needs inside run(), so `nccldoctor
preflight` never loads torch.

nccldoctor.commands.bench is their peer but not a subcommand: torchrun starts it on every rank
as `-m nccldoctor.bench`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMANDS: dict[str, str] = {
    "show": "nccldoctor.commands.show",
    "codes": "nccldoctor.commands.codes",
    "preflight": "nccldoctor.commands.preflight",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])
