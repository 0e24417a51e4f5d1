"""`torchrun ... -m nccldoctor.bench [options]`: the bench's entry (nccldoctor.commands.bench).

Nothing here may import torch: the entry must hold the signals first (see commands.bench).
"""

from __future__ import annotations

from nccldoctor.commands.bench import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
