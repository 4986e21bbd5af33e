"""The GitHub workflows: valid against the workflow schema, and they run what the README and the issue say."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CI, NIGHTLY = WORKFLOWS / "ci.yml", WORKFLOWS / "nightly-gpu.yml"


def _check_jsonschema() -> list[str]:
    exe = Path(sys.executable).parent / "check-jsonschema"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("check-jsonschema")
    if found is None:
        pytest.fail("check-jsonschema is not installed: pip install -e '.[dev]'")
    return [found]


def validate(*paths: Path) -> subprocess.CompletedProcess:
    # the schema ships inside check-jsonschema: no network needed
    return subprocess.run(_check_jsonschema() + ["--builtin-schema", "vendor.github-workflows", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())  # YAML 1.2: `on` stays a string key


def steps(wf: dict) -> list[dict]:
    return [s for job in wf["jobs"].values() for s in job["steps"]]


def runs(wf: dict) -> str:
    return "\n".join(s.get("run", "") for s in steps(wf))


def test_workflows_match_the_schema():
    r = validate(CI, NIGHTLY)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("breakage", ["drop runs-on", "unknown trigger", "steps not a list"])
def test_the_schema_check_rejects_a_broken_workflow(tmp_path, breakage):
    text = NIGHTLY.read_text()
    broken = {
        "drop runs-on": re.sub(r"\n    runs-on: .*", "", text),
        "unknown trigger": text.replace("  workflow_dispatch:", "  nightly_please:"),
        "steps not a list": re.sub(r"(?s)\n    steps:\n.*", "\n    steps: make laws\n", text),
    }[breakage]
    assert broken != text
    bad = tmp_path / "bad.yml"
    bad.write_text(broken)
    assert validate(bad).returncode != 0


def quick_start_commands() -> list[str]:
    """The README's quick-start commands (the ```sh block under "## Quick start")."""
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_commands_on_pull_requests():
    wf = load(CI)
    assert "pull_request" in wf["on"]
    lines = [line.strip() for line in runs(wf).splitlines()]
    commands = quick_start_commands()
    assert len(commands) == 2 and any(c.endswith(" test") for c in commands) and any(c.endswith(" laws") for c in commands)
    for c in commands:  # each README command runs in CI, the laws one at the smoke tier
        assert any(line == c or line.startswith(c + " ") for line in lines), c
    laws = next(c for c in commands if c.endswith(" laws"))
    assert any(line.startswith(laws + " --tier smoke ") for line in lines)
    assert any("upload-artifact" in s.get("uses", "") for s in steps(wf))


def test_nightly_is_a_cron_gpu_job_that_compares_and_fails_on_regressions():
    wf = load(NIGHTLY)
    assert re.fullmatch(r"[\d*/,-]+( [\d*/,-]+){4}", wf["on"]["schedule"][0]["cron"])
    (job,) = wf["jobs"].values()
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    assert job["env"]["LRLAWS_STORE"].startswith("/")  # persistent on the runner, not the workspace
    cmds = runs(wf)
    pytest_cmd = next(s["run"] for s in steps(wf) if "dev.py laws" in s.get("run", ""))
    for flag in ("--tier gpu", "--gpus all", '--store "$LRLAWS_STORE"', '--compare-to "${{ steps.ref.outputs.report }}"',
                 "--fail-on"):
        assert flag in pytest_cmd
    # the pytest step must not swallow its exit status: that is how the job fails on regressions
    assert "|| true" not in pytest_cmd and "continue-on-error" not in next(
        s for s in steps(wf) if s.get("run") == pytest_cmd)
    assert "$GITHUB_STEP_SUMMARY" in cmds and re.search(r"python\"? -m harness trends", cmds)
    download = next(s for s in steps(wf) if "download-artifact" in s.get("uses", ""))
    upload = next(s for s in steps(wf) if "upload-artifact" in s.get("uses", ""))
    assert download["with"]["name"] == upload["with"]["name"] and upload["if"] == "always()"
    assert "run-id" in download["with"]
    assert wf["permissions"]["actions"] == "read"


def test_workflow_pytest_options_exist(pytester):
    """Every --option the workflows hand to pytest is one pytest (with the lrlaws plugin) knows."""
    parser = pytester.parseconfig()._parser
    known = {name for group in [parser._anonymous, *parser._groups] for opt in group.options for name in opt.names()}
    used = set()
    for wf in (load(CI), load(NIGHTLY)):
        for s in steps(wf):
            cmd = s.get("run", "")
            if "pytest" in cmd or "dev.py laws" in cmd or "dev.py test" in cmd:
                used |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", cmd))
    assert {"--tier", "--compare-to", "--fail-on", "--junitxml"} <= used
    unknown = used - known
    assert not unknown, f"options not known to pytest: {sorted(unknown)}"


# ------------------------------------------------------------ nightly robustness --

def step(wf: dict, name_part: str) -> dict:
    (s,) = [s for s in steps(wf) if name_part in s.get("name", "")]
    return s


def bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(["bash", "-e", "-c", script], env={**os.environ, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_every_nightly_step_has_a_timeout_within_the_job_s():
    wf = load(NIGHTLY)
    (job,) = wf["jobs"].values()
    for s in job["steps"]:
        assert isinstance(s.get("timeout-minutes"), int), f"step {s.get('name') or s.get('uses')} has no timeout-minutes"
    laws = step(wf, "Laws, gpu tier")
    assert sum(s["timeout-minutes"] for s in job["steps"] if s is not laws) < 120
    assert laws["timeout-minutes"] < job["timeout-minutes"]


def test_preflight_fails_in_seconds_without_cuda(tmp_path):
    import time

    wf = load(NIGHTLY)
    names = [s.get("name", "") for s in steps(wf)]
    pre = step(wf, "Pre-flight")
    assert names.index(pre["name"]) < names.index(step(wf, "Laws, gpu tier")["name"]) and pre["timeout-minutes"] <= 5
    t0 = time.time()
    r = bash(pre["run"].replace('"$LRLAWS_VENV/bin/python"', f'"{sys.executable}"'), {}, tmp_path)
    import torch

    if torch.cuda.device_count() == 0:
        assert r.returncode != 0 and time.time() - t0 < 60
        assert r.stderr.strip().splitlines()[-1].startswith("pre-flight: --tier gpu needs a CUDA device and torch")
    else:
        assert r.returncode == 0 and r.stdout.startswith("pre-flight: "), r.stderr


def test_summary_shows_this_run_s_report_only(tmp_path):
    import os
    import time

    script = step(load(NIGHTLY), "job summary")["run"]
    reports, temp = tmp_path / "reports", tmp_path / "temp"
    (reports / "20260101-000000-gpu-1").mkdir(parents=True)
    (reports / "20260101-000000-gpu-1" / "report.md").write_text("# last night's report\n")
    temp.mkdir()
    env = {"REPORTS": str(reports), "RUNNER_TEMP": str(temp), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}

    assert bash(script, env, tmp_path).returncode == 0  # crashed before the laws step: no report of this run
    assert "This run wrote no report" in (tmp_path / "summary.md").read_text()
    (temp / "laws-started").touch()
    old = time.time() - 3600
    os.utime(reports / "20260101-000000-gpu-1" / "report.md", (old, old))
    (tmp_path / "summary.md").unlink()
    assert bash(script, env, tmp_path).returncode == 0  # crashed in the laws step, before any report
    assert "This run wrote no report" in (tmp_path / "summary.md").read_text()
    (reports / "20260102-000000-gpu-2").mkdir()
    (reports / "20260102-000000-gpu-2" / "report.md").write_text("# tonight's report\n")
    (tmp_path / "summary.md").unlink()
    assert bash(script, env, tmp_path).returncode == 0
    assert (tmp_path / "summary.md").read_text() == "# tonight's report\n"


def test_reference_is_the_last_good_night_of_this_branch_and_event_and_history_keeps_failed_nights():
    wf = load(NIGHTLY)
    script = step(wf, "Find the last good night")["with"]["script"]
    assert "branch: process.env.GITHUB_REF_NAME" in script and "event: context.eventName" in script
    assert "status: 'success'" in script and "status: 'completed'" in script
    history, good = step(wf, "trend history"), step(wf, "last good night (the reference)")
    assert history["with"]["run-id"] == "${{ steps.last.outputs.last_id }}"
    assert history["with"]["path"] == "${{ env.REPORTS }}"
    assert good["with"]["run-id"] == "${{ steps.last.outputs.good_id }}"
    assert good["with"]["path"] != history["with"]["path"]


def test_reference_report_is_the_good_night_s_newest_or_previous(tmp_path):
    script = step(load(NIGHTLY), "pick the reference report")["run"]
    reports, temp = tmp_path / "reports", tmp_path / "temp"
    env = {"REPORTS": str(reports), "RUNNER_TEMP": str(temp), "KEEP_NIGHTS": "60", "GITHUB_OUTPUT": str(tmp_path / "out")}
    temp.mkdir()
    assert bash(script, env, tmp_path).returncode == 0
    assert (tmp_path / "out").read_text() == "report=previous\n"
    for night in ("20260101-000000-gpu-1", "20260102-000000-gpu-2"):
        (temp / "last-good" / night).mkdir(parents=True)
        (temp / "last-good" / night / "report.json").write_text("{}")
    (tmp_path / "out").unlink()
    assert bash(script, env, tmp_path).returncode == 0
    assert (tmp_path / "out").read_text() == f"report={temp}/last-good/20260102-000000-gpu-2/report.json\n"


def test_the_store_is_pruned_at_the_end():
    wf = load(NIGHTLY)
    last = steps(wf)[-1]
    assert "-m harness store prune --keep-days" in last["run"] and last["if"] == "always()"
    assert '--store "$LRLAWS_STORE"' in last["run"]
    (job,) = wf["jobs"].values()
    assert float(job["env"]["KEEP_STORE_DAYS"]) > 0
