"""`nccldoctor explain`: read a failed job's logs and say what went wrong, root cause first.

    reader.py       files, folders, stdin, gzip -> candidate lines, streamed in binary chunks
    prefilter.py    which lines of a chunk hold an anchor (numpy, one pass); only those are decoded
    attribution.py  who wrote a line: torchrun, Slurm, NCCL and logging prefixes -> rank, host, time
    signatures.py   the catalogue: one declarative entry per known message (code, pattern, source)
    blocks.py       multi-line messages: torchrun's "Root Cause (first observed failure)" block
    engine.py       events -> findings: collapse repeats, order in time, root cause vs consequences
    report.py       the Report (the bench's contract) with its `logs` section

Nothing here imports torch: explaining logs runs on a laptop.
"""
