"""`nccldoctor compare OLD NEW`: exit 0 / 1 / 2, JSON that parses, Markdown, and no torch.

OLD and NEW are real 2-node x 2-rank reports of the emulated cluster (fixtures/baseline/): three
healthy runs on the fast NIC and one with the traffic on the NIC shaped to 200 Mbit/s.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nccldoctor.cli import parse_args
from nccldoctor.commands import load
from nccldoctor.errors import UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "baseline"
FAST, FAST2, SLOW = (str(FIXTURES / f"cluster_{n}.json") for n in ("fast1", "fast2", "slow"))


def compare(capsys, *args):
    """(exit code, stdout, the one-line error) as the console script would give them."""
    try:
        code, error = load("compare").run(parse_args(["compare", *args])), ""
    except UsageError as exc:
        code, error = 2, str(exc)
    return code, capsys.readouterr().out, error


def test_a_healthy_pair_exits_0_with_no_regression(capsys):
    code, out, _ = compare(capsys, FAST, FAST2, "--json")
    data = json.loads(out)
    assert code == 0 and data["exit_code"] == 0 and data["comparable"]
    assert data["findings"] == [] and data["baseline"] == FAST and data["run"] == FAST2
    assert {d["metric"] for d in data["deltas"]} == {"busbw", "latency", "time", "link", "score"}


def test_the_run_on_the_slow_nic_exits_1_and_the_json_names_all_reduce(capsys):
    code, out, _ = compare(capsys, FAST, SLOW, "--json")
    data = json.loads(out)
    assert code == 1 and data["verdict"] == "fail"
    failed = {f["evidence"]["probe"] for f in data["findings"] if f["severity"] == "fail"}
    assert "all_reduce" in failed
    (busbw,) = [
        d for d in data["deltas"] if d["judged"] and d["metric"] == "busbw" and d["probe"] == "all_reduce"
    ]
    assert busbw["status"] == "fail" and busbw["slowdown"] > 5 and busbw["new"] < 0.03


def test_the_flags_move_the_bars(capsys):
    # The slow run fell 89-99%: under a 99.5% fail bar it is a warning, and the exit code is 0.
    code, out, _ = compare(capsys, FAST, SLOW, "--json", "--regression-fail", "99.5")
    assert code == 0 and {f["severity"] for f in json.loads(out)["findings"]} == {"warn"}
    code, out, _ = compare(capsys, FAST, SLOW, "--json", "--regression-noise", "100")
    assert code == 0 and json.loads(out)["findings"] == []


def test_the_terminal_and_markdown_show_the_delta_table(capsys):
    code, out, _ = compare(capsys, FAST, SLOW)
    assert code == 1 and "peak busbw at 2M" in out and "verdict: FAIL exit code 1" in out
    code, out, _ = compare(capsys, FAST, SLOW, "--markdown")
    assert code == 1 and "| what | measure | baseline | this run | change | slower | noise | status |" in out
    assert f"## Baseline {FAST}: every size" in out and "| regression |" not in out.split("## Findings")[0]


def test_runs_that_cannot_be_compared_say_why_and_exit_0(capsys, tmp_path):
    other = json.loads(Path(FAST2).read_text())
    other["job"]["world_size"] = 8
    (tmp_path / "report.json").write_text(json.dumps(other))
    code, out, _ = compare(capsys, FAST, str(tmp_path), "--json")
    data = json.loads(out)
    assert code == 0 and not data["comparable"] and data["deltas"] == []
    assert data["reasons"] == ["ranks: 4 in the baseline, 8 in this run"]
    assert [f["code"] for f in data["findings"]] == ["baseline_not_comparable"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", FAST], "compare: OLD nowhere: no report there"),
        ([FAST, str(FIXTURES)], "compare: NEW"),
        ([FAST, FAST2, "--regression-fail", "150"], "'150' is not a percentage in (0, 100)"),
        ([FAST, FAST2, "--json", "--markdown"], "not allowed with argument"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    code, out, error = compare(capsys, *args)
    assert code == 2 and out == "" and message in error and "\n" not in error


def test_the_console_script_exits_2_with_one_line_on_stderr(tmp_path):
    (tmp_path / "report.json").write_text("[1, 2]")
    cmd = [sys.executable, "-m", "nccldoctor.cli", "compare", FAST, str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"nccldoctor: error: compare: NEW {tmp_path} is not a nccldoctor report.json: "
        "it holds a JSON list, not a report's object\n"
    )


def test_compare_does_not_import_torch():
    code = (
        "import sys\n"
        "from nccldoctor.cli import parse_args\n"
        "from nccldoctor.commands import load\n"
        f"assert load('compare').run(parse_args(['compare', {FAST!r}, {SLOW!r}, '--json'])) == 1\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "False"
