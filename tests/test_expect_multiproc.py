"""--expect under torchrun: a bad file stops every rank with one line and exit 2, before anything
is measured (rank 0 reads the file; the others learn it through the store)."""

import pytest
from conftest import QUICK, torchrun

pytestmark = pytest.mark.multiproc


def test_an_unknown_key_in_the_expectations_file_is_one_line_and_exit_2(tmp_path, out_dir):
    expect = tmp_path / "expect.toml"
    expect.write_text("[probes.all_reduce]\nmin_busbw_gbps = 1\nmax_latncy_us = 50\n")
    run = torchrun(2, [*QUICK, "--expect", str(expect)], out_dir, timeout=120)
    said = [line for line in run.stderr.splitlines() if line.startswith("nccldoctor: error:")]
    assert said == [
        f"nccldoctor: error: --expect {expect}:3: probes.all_reduce.max_latncy_us: unknown key "
        "(known in [probes.all_reduce]: min_busbw_gbps, max_latency_us, min_share_of_line_rate, at)"
    ], run.stderr[-2000:]
    assert run.rank_exit_codes() == {0: 2, 1: 2}
    assert not (out_dir / "results.csv").exists()  # stopped before measuring
