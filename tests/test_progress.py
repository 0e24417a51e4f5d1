"""The progress display: a bar on a terminal, complete plain lines in a log or a pipe."""

import io

from rich.console import Console

from nccldoctor.progress import ProgressDisplay


def plain_lines(labels, width=40):
    out = io.StringIO()
    display = ProgressDisplay(enabled=True, console=Console(file=out, width=width, force_terminal=False))
    display.start(len(labels))
    for label in labels:
        display.advance(label)
    display.stop()
    return out.getvalue().splitlines()


def test_piped_progress_prints_each_phase_step_whole_and_each_collective_once():
    labels = [
        "all_reduce 8 in-place",
        "all_reduce 64K in-place",
        "stragglers: compute and step",
        "stragglers: look 1 of 3",
        "settings sweep: NCCL_ALGO=Ring NCCL_PROTO=Simple (round 1)",  # longer than the 40 columns
        "settings sweep: NCCL_ALGO=Ring NCCL_PROTO=Simple (round 1)",
    ]
    assert plain_lines(labels) == [
        "[1/6] all_reduce",
        "[3/6] stragglers: compute and step",
        "[4/6] stragglers: look 1 of 3",
        "[5/6] settings sweep: NCCL_ALGO=Ring NCCL_PROTO=Simple (round 1)",
    ]


def test_labels_with_brackets_are_printed_as_they_are():
    assert plain_lines(["DDP benchmark: [bold]window[/bold] 1"]) == [
        "[1/1] DDP benchmark: [bold]window[/bold] 1"
    ]
