"""Consistency across nodes, checked before the process group forms.

Each node leader collects facts about its own node (the code it runs, the paths it sees, ...)
with the cheap, torch-free building blocks in this package; the facts travel through the
rendezvous store, and rank 0 compares them across nodes, naming the odd node(s) out against
the majority (`majority.odd_ones_out`). Nothing here imports torch: it runs before init.
"""
