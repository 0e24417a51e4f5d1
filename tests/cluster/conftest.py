import os

import pytest

from cluster import cluster_unavailable_reason

_REASON = cluster_unavailable_reason()
# CI sets this: there the bed must be built, a skip would hide that nothing was tested.
_REQUIRED = os.environ.get("NCCLDOCTOR_REQUIRE_CLUSTER") == "1"


def pytest_collection_modifyitems(config, items):
    if _REASON is None:
        return
    for item in items:
        if "cluster" in item.keywords:
            if _REQUIRED:
                raise pytest.UsageError(f"emulated cluster required but unavailable: {_REASON}")
            item.add_marker(pytest.mark.skip(reason=f"emulated cluster unavailable: {_REASON}"))


@pytest.fixture
def make_cluster():
    """Build emulated clusters inside a test: make_cluster(nodes=3, nics=("ib0", "eth9"));
    every one is torn down when the test ends, passed or failed."""
    from cluster import Cluster

    built: list[Cluster] = []

    def make(**kwargs) -> Cluster:
        cluster = Cluster(**kwargs).__enter__()
        built.append(cluster)
        return cluster

    yield make
    for cluster in built:
        cluster.teardown()
