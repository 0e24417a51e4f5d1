import pytest

from cluster import cluster_unavailable_reason

_REASON = cluster_unavailable_reason()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "cluster" in item.keywords and _REASON is not None:
            item.add_marker(pytest.mark.skip(reason=f"emulated cluster unavailable: {_REASON}"))
