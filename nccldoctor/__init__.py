"""nccldoctor: diagnose collective communication (NCCL, Gloo) under torchrun."""

__version__ = "0.1.0"
