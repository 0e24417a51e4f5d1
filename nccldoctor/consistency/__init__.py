"""Job consistency: is every node running the same job? (the bench's consistency phase, preflight)

A multi-node job that hangs or diverges is, as often as not, nodes that disagree: another torch
or NCCL on one node, an edited file in one copy of the training code, a dataset path that is
missing or half-synced on one node, a clock minutes off, more ranks than GPUs, a variable set on
some nodes only. Each module here reads one kind of fact on a node, or judges the facts of all
nodes against their majority (majority.py) and names the odd node(s) out. The phase that moves
the facts through the rendezvous store is probes/consistency.py. Nothing here imports torch but
clocks.py, which speaks through the store; facts.py reads torch's build from its version.py, so
preflight can read a node's versions without torch's start-up.
"""
