"""An emulated multi-node cluster for tests: Linux network namespaces as nodes.

See bed.py. Everything it creates lives inside namespaces it made itself, on addresses in
10.213.0.0/16, and is torn down on exit, even when a test fails or is interrupted.
"""

from .bed import Cluster, ClusterRun, Node, cluster_unavailable_reason

__all__ = ["Cluster", "ClusterRun", "Node", "cluster_unavailable_reason"]
