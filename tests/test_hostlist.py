"""Slurm hostlists: compression keeps zero-padding and prefixes apart, expansion reads it back."""

import pytest

from nccldoctor.gate.hostlist import compress, expand


@pytest.mark.parametrize(
    ("hosts", "hostlist"),
    [
        (["gpu003", "gpu017", "gpu018"], "gpu[003,017-018]"),
        (["gpu018", "gpu017", "gpu003", "gpu017"], "gpu[003,017-018]"),  # order and duplicates
        (["gpu7"], "gpu7"),  # one host: no brackets, as Slurm writes it
        (["node9", "node10", "node11"], "node[9-11]"),  # unpadded ranges cross a digit count
        (["node09", "node10"], "node[09-10]"),  # padded to the lower bound's width
        (["node099", "node100", "node0101"], "node[099-100,0101]"),  # 0101 is not 101 at width 3
        (["a1", "b2", "b3", "login"], "a1,b[2-3],login"),  # several prefixes; no digit: as it is
        (["rack1-node07", "rack1-node08", "rack2-node07"], "rack1-node[07-08],rack2-node07"),
        (["n1-ib", "n2-ib", "n3"], "n3,n[1-2]-ib"),  # a suffix after the number stays
        (["gpu2", "gpu10", "gpu1"], "gpu[1-2,10]"),  # natural order, not string order
        ([], ""),
    ],
)
def test_compress_and_expand_round_trip(hosts, hostlist):
    assert compress(hosts) == hostlist
    assert sorted(expand(hostlist)) == sorted(set(hosts))


def test_expand_reads_slurm_forms_in_order():
    assert expand("gpu[003,017-018],login,c[9-11]x") == [
        *("gpu003", "gpu017", "gpu018", "login"),
        *("c9x", "c10x", "c11x"),
    ]
    assert expand(" a1 , b[1-2] ") == ["a1", "b1", "b2"]


@pytest.mark.parametrize("bad", ["gpu[1-2", "gpu1-2]", "gpu[3-1]", "gpu[a-b]", "gpu[1][2]", "gpu[[1]]"])
def test_expand_rejects_what_slurm_would_not_read(bad):
    with pytest.raises(ValueError):
        expand(bad)
