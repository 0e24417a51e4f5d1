"""The `nccldoctor` subcommands, one module each, registered here by name.

A command module has HELP (one line, shown by `nccldoctor --help`), add_arguments(parser) and
run(args) -> int (the exit code); FORWARDS_UNKNOWN = True hands it the arguments nccldoctor does
not know, as args.forwarded. Adding a command is one module and one line in COMMANDS. Modules
are named, not imported, here; the one that runs imports what it needs inside run(), so
`nccldoctor preflight` never loads torch.

nccldoctor.commands.bench is also the bench's entry under torchrun (`-m nccldoctor.bench`, on
every rank); `nccldoctor bench` runs it when torchrun started it, and otherwise prints the
torchrun command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMANDS: dict[str, str] = {
    "bench": "nccldoctor.commands.bench",
    "run": "nccldoctor.commands.run",
    "preflight": "nccldoctor.commands.preflight",
    "show": "nccldoctor.commands.show",
    "codes": "nccldoctor.commands.codes",
    "explain": "nccldoctor.commands.explain",
    "compare": "nccldoctor.commands.compare",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])
