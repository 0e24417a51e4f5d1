"""A real straggler run for report.html's tests and README's screenshot (issue 19).

    sudo python tests/cluster/make_html_fixtures.py [--screenshot docs/report-html.png]

A script, not a test: run as root, it builds a 3-node emulated cluster (2 NICs per node, 1 Gloo
rank per node), gives node 2 a CPU quota of 0.25 cores and shapes every node's slow0 to
200 Mbit/s, then runs the whole bench (every probe to 4M, the per-NIC sweep, the DDP benchmark).
The throttled node is named (straggler_node) and the shaped NIC shows in the NIC sweep. Its
report.json is saved as tests/fixtures/reports/straggler_cluster.json; with --screenshot, the
report.html it wrote is opened in headless Chromium and the top of the page and its straggler
scores are saved as one PNG (README's screenshot).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster import Cluster, cluster_unavailable_reason
from nccldoctor.reports.figures.canvas import FAIL

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "reports" / "straggler_cluster.json"
SLOW_NODE = 2
ARGS = ["-e", "4M", "-n", "5", "-w", "1", "--ddp-steps", "6"]
TOP_PX, SCORES_PX = 1080, 820  # the screenshot's two parts, in pixels at 1280 wide


def run_bench(out: Path) -> dict:
    with Cluster(nodes=3, nics=("fast0", "slow0")) as cluster:
        cluster.shape("slow0", mbit=200)
        cluster.cpu_quota(node=SLOW_NODE, cores=0.25)
        run = cluster.torchrun(1, ARGS, out, timeout=600)
    report = json.loads((out / "report.json").read_text())
    named = [f["nodes"] for f in report["findings"] if f["code"] == "straggler_node"]
    print(f"verdict {report['verdict']}; straggler_node on {named}; return codes {run.returncodes}")
    return report


def screenshot(page: Path, png: Path) -> None:
    """The top of the page (verdict, finding, hosts to exclude, job) over its straggler scores
    (found as the first rows holding the red of a failed rank's bar below the top), one PNG."""
    from PIL import Image

    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))))
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.png"
        subprocess.run(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp}/profile", "--window-size=1280,14000", f"--screenshot={full}",
             page.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        image = Image.open(full).convert("RGB")
    red = tuple(int(FAIL[i : i + 2], 16) for i in (1, 3, 5))
    rows = [y for y in range(TOP_PX, image.height, 2) if _has(image, y, red)]
    top = image.crop((0, 0, image.width, TOP_PX))
    scores_at = max(TOP_PX, rows[0] - 300) if rows else TOP_PX
    scores = image.crop((0, scores_at, image.width, scores_at + SCORES_PX))
    composite = Image.new("RGB", (image.width, TOP_PX + SCORES_PX + 6), (200, 200, 200))
    composite.paste(top, (0, 0))
    composite.paste(scores, (0, TOP_PX + 6))
    composite.save(png, optimize=True)
    print(f"screenshot: {png}")


def _has(image, y: int, color: tuple[int, int, int]) -> bool:
    return any(image.getpixel((x, y)) == color for x in range(200, image.width - 200, 3))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, help="save the top of report.html as this PNG")
    args = parser.parse_args()
    reason = cluster_unavailable_reason()
    if reason:
        print(f"make_html_fixtures: cannot build the emulated cluster: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        run_bench(out)
        FIXTURE.write_text((out / "report.json").read_text())
        print(f"saved {FIXTURE.relative_to(ROOT)}")
        if args.screenshot:  # the page of this run, as the run wrote it
            screenshot(out / "report.html", args.screenshot.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
