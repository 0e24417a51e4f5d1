"""The recipes in examples/: what can be checked without Slurm, Kubernetes or GitHub.

YAML parses; the workflow validates against the GitHub Actions schema (check-jsonschema's
vendored copy, offline); the Kubernetes manifests carry what the API server requires; the shell
scripts pass `bash -n` (and shellcheck where installed). The sbatch scripts' decisions (what to
drain, when to resubmit, which code to exit with) run against stand-ins for srun, scontrol,
sbatch and nccldoctor that log how they were called. The node script's launch itself runs on
the emulated cluster: tests/cluster/test_slurm_recipe_cluster.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).parents[1] / "examples"
SLURM = EXAMPLES / "slurm"
SHELL_SCRIPTS = sorted([*SLURM.glob("*.sbatch"), *SLURM.glob("*.sh")])
YAML_FILES = sorted([*EXAMPLES.rglob("*.yml"), *EXAMPLES.rglob("*.yaml")])
WORKFLOW = EXAMPLES / "github-actions" / "nccldoctor.yml"


def test_every_recipe_is_there():
    names = {p.relative_to(EXAMPLES).as_posix() for p in [*SHELL_SCRIPTS, *YAML_FILES]}
    assert {
        "slurm/healthcheck.sbatch",
        "slurm/train.sbatch",
        "slurm/nccldoctor-node.sh",
        "kubernetes/pytorchjob.yaml",
        "github-actions/nccldoctor.yml",
    } <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_yaml_parses(path):
    assert list(yaml.safe_load_all(path.read_text()))


# -- GitHub Actions ----------------------------------------------------------------------------


def validate_workflow(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_workflow_validates_against_the_github_actions_schema(tmp_path):
    result = validate_workflow(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator can say no: the same workflow without `runs-on` is refused.
    broken = yaml.safe_load(WORKFLOW.read_text())
    del broken["jobs"]["collectives"]["runs-on"]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert validate_workflow(tmp_path / "broken.yml").returncode != 0


def test_the_workflow_gates_on_nccldoctor_run_and_always_publishes():
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["collectives"]["steps"]
    (check,) = [s for s in steps if "nccldoctor run" in s.get("run", "")]
    assert "--quick" in check["run"] and 'exit "$code"' in check["run"]
    after = steps[steps.index(check) + 1 :]
    junit = [s for s in after if s.get("with", {}).get("report_paths") == "report/junit.xml"]
    upload = [s for s in after if s.get("uses", "").startswith("actions/upload-artifact")]
    assert junit and upload and upload[0]["with"]["path"] == "report/"
    assert all(s.get("if") == "always()" for s in after)  # a failed check still publishes


# -- Kubernetes --------------------------------------------------------------------------------


def pod_specs(manifest: dict) -> list[dict]:
    """Every pod template's spec in a PyTorchJob, Job or JobSet."""
    spec = manifest["spec"]
    if manifest["kind"] == "PyTorchJob":
        return [r["template"]["spec"] for r in spec["pytorchReplicaSpecs"].values()]
    if manifest["kind"] == "JobSet":
        return [r["template"]["spec"]["template"]["spec"] for r in spec["replicatedJobs"]]
    return [spec["template"]["spec"]] if "template" in spec else []


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("kubernetes/*.y*ml")), ids=lambda p: p.name)
def test_kubernetes_manifests_have_what_the_api_needs_and_call_nccldoctor_run(path):
    manifests = [m for m in yaml.safe_load_all(path.read_text()) if m]
    commands = []
    for manifest in manifests:
        assert manifest["apiVersion"] and manifest["kind"] and manifest["metadata"]["name"]
        for pod in pod_specs(manifest):
            for container in pod["containers"]:
                assert container["name"] and container["image"] and container["command"]
                commands.append(" ".join(container["command"]))
                if container["command"][:2] == ["bash", "-c"]:  # the script must parse too
                    check = subprocess.run(["bash", "-n", "-c", container["command"][2]], capture_output=True)
                    assert check.returncode == 0, check.stderr
            assert pod.get("restartPolicy", "Never") in {"Never", "OnFailure"}
    assert commands and all("nccldoctor run" in c for c in commands)
    # the check gates the training: training starts only after it and only if it passed
    assert all(re.search(r"nccldoctor run .*\|\| exit.*exec torchrun", c, re.S) for c in commands)


# -- Slurm -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse(path):
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_pass_shellcheck(path):
    if not shutil.which("shellcheck"):  # .ci/run installs it; a skip shows in pytest's summary
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", ["healthcheck.sbatch", "train.sbatch"])
def test_sbatch_scripts_ask_for_one_task_per_node_and_whole_gpu_nodes(name):
    directives = re.findall(r"^#SBATCH (--[\w-]+)", (SLURM / name).read_text(), re.M)
    assert {"--nodes", "--ntasks-per-node", "--gpus-per-node", "--exclusive", "--time"} <= set(directives)
    assert "--ntasks-per-node=1" in (SLURM / name).read_text()


FAKES = {
    # srun: the check's step exits with FAKE_CHECK_CODE; any other step (the training) with 0
    "srun": 'echo "srun $*" >>"$FAKE_LOG"\n'
    'case "$*" in *nccldoctor-node.sh*) exit "$FAKE_CHECK_CODE";; esac\n',
    "nccldoctor": 'echo "nccldoctor $*" >>"$FAKE_LOG"\n'
    'case "$*" in "show "*" --exclude") echo "$FAKE_EXCLUDE"; exit 0;; esac\nexit 2\n',
    "scontrol": 'echo "scontrol $*" >>"$FAKE_LOG"\n[ "$1" = show ] && echo gpu001\nexit 0\n',
    "sbatch": 'echo "sbatch $*" >>"$FAKE_LOG"\necho "Submitted batch job 1235"\n',
}


def sbatch_run(tmp_path: Path, script: str, check_code: int, exclude: str = "", **env: str):
    """Run examples/slurm/SCRIPT as the batch step of job 1234 on two nodes, with the stand-ins.
    Returns (exit code, the stand-ins' calls, the report folder)."""
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    for name, body in FAKES.items():
        (tools / name).write_text("#!/bin/sh\n" + body)
        (tools / name).chmod(0o755)
    log, out_root = tmp_path / "calls.log", tmp_path / "shared"
    full_env = {
        **os.environ,
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "1234",
        "SLURM_JOB_NODELIST": "gpu[001-002]",
        "SLURM_NNODES": "2",
        "SLURM_SUBMIT_DIR": str(SLURM),
        "SLURM_GPUS_ON_NODE": "8",
        "NCCLDOCTOR_OUT_ROOT": str(out_root),
        "NCCLDOCTOR_OUT": str(out_root / "1234"),
        "FAKE_LOG": str(log),
        "FAKE_CHECK_CODE": str(check_code),
        "FAKE_EXCLUDE": exclude,
        **env,
    }
    result = subprocess.run(["bash", str(SLURM / script)], env=full_env, capture_output=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, calls, out_root / "1234"


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_the_health_check_exits_with_the_gates_code(tmp_path, code):
    exit_code, calls, _ = sbatch_run(tmp_path, "healthcheck.sbatch", code)
    assert exit_code == code
    (step,) = [c for c in calls if c.startswith("srun")]
    assert "--ntasks-per-node=1" in step and "--kill-on-bad-exit=0" in step
    assert step.endswith(f"nccldoctor-node.sh --quick --out {tmp_path}/shared/1234")


def test_a_failed_check_lists_the_hosts_and_drains_them_only_when_asked(tmp_path):
    exit_code, calls, out = sbatch_run(tmp_path, "healthcheck.sbatch", 1, exclude="gpu[003,017-018]")
    assert exit_code == 1 and (out / "exclude.slurm").read_text() == "gpu[003,017-018]\n"
    assert f"nccldoctor show {out} --exclude" in calls
    assert not any(c.startswith("scontrol update") for c in calls)

    hosts = "gpu[003,017-018]"
    exit_code, calls, _ = sbatch_run(tmp_path, "healthcheck.sbatch", 1, hosts, NCCLDOCTOR_DRAIN="1")
    (drain,) = [c for c in calls if c.startswith("scontrol update")]
    assert drain.startswith(f"scontrol update NodeName={hosts} State=DRAIN Reason=nccldoctor job 1234")


def test_a_passed_check_drains_nobody_and_training_starts(tmp_path):
    exit_code, calls, out = sbatch_run(tmp_path, "train.sbatch", 0)
    assert exit_code == 0 and not (out / "exclude.slurm").exists()
    assert not any(c.startswith(("scontrol update", "sbatch", "nccldoctor show")) for c in calls)
    training = calls[-1]
    assert training.startswith("srun --ntasks-per-node=1")
    assert "torchrun --nnodes 2 --nproc-per-node 8" in training
    assert "--rdzv-endpoint gpu001:29734" in training  # not the check's port (29400 + 234)


def test_a_failed_check_resubmits_the_training_without_the_blamed_hosts(tmp_path):
    env = {"NCCLDOCTOR_EXCLUDED": "gpu003"}  # excluded by an earlier attempt
    exit_code, calls, _ = sbatch_run(tmp_path, "train.sbatch", 1, exclude="gpu017", **env)
    assert exit_code == 1
    (resubmit,) = [c for c in calls if c.startswith("sbatch")]
    assert "--exclude=gpu003,gpu017" in resubmit and "NCCLDOCTOR_ATTEMPT=2" in resubmit
    assert resubmit.endswith("train.sbatch") and not any("torchrun" in c for c in calls)


@pytest.mark.parametrize(
    ("code", "env", "resubmitted"),
    [
        (1, {"NCCLDOCTOR_ATTEMPT": "3"}, False),  # the last attempt: give up, say the check's code
        (2, {}, False),  # a config error is not fixed by other nodes
        (3, {}, True),  # a node died during the check: retry, nobody to exclude
    ],
)
def test_training_never_starts_after_a_check_that_did_not_pass(tmp_path, code, env, resubmitted):
    exit_code, calls, _ = sbatch_run(tmp_path, "train.sbatch", code, **env)
    assert exit_code == code and not any("torchrun" in c for c in calls)
    resubmits = [c for c in calls if c.startswith("sbatch")]
    assert bool(resubmits) == resubmitted
    assert all("--exclude" not in c for c in resubmits)
