"""Consistency: what every node must agree on before the process group forms, checked through
the rendezvous store alone (so a disagreement is named instead of surfacing later as a hang or
a confusing log): each concern (the nodes' clocks, ...) is one module here with its store
protocol and its judge, and the consistency phase runs them in turn.
"""
