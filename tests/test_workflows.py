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
    """The README's quick-start commands (the indented block under "## Quick start")."""
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line.split("#")[0].strip() for line in section.splitlines() if line.startswith("    ") and line.strip()]


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
    pytest_cmd = next(s["run"] for s in steps(wf) if "--tier gpu" in s.get("run", ""))
    for flag in ("--tier gpu", "--gpus all", '--store "$LRLAWS_STORE"', "--compare-to previous", "--fail-on"):
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
