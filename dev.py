#!/usr/bin/env python3
"""Quick start with nothing but Python: ``python3 dev.py laws`` / ``python3 dev.py test``.

Creates ``.venv`` on first use (and again whenever pyproject.toml changes),
installs lrlaws with its dev and ray extras into it, then runs pytest there.
Anything after the command goes to pytest unchanged.
"""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("LRLAWS_VENV", ROOT / ".venv"))
EXTRAS = os.environ.get("LRLAWS_EXTRAS", "dev,ray")
TARGETS = {"laws": "laws/", "test": "tests/"}


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> None:
    stamp = VENV / ".installed"
    pyproject = ROOT / "pyproject.toml"
    if stamp.exists() and stamp.read_text() == EXTRAS and stamp.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    if not python().exists():
        print(f"dev.py: creating {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print(f"dev.py: installing lrlaws[{EXTRAS}] into {VENV} (first time: a few minutes)", file=sys.stderr)
    subprocess.run([python(), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([python(), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{EXTRAS}]"], check=True)
    stamp.write_text(EXTRAS)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TARGETS:
        print(__doc__.strip(), file=sys.stderr)
        print(f"\nusage: python3 dev.py {{{','.join(TARGETS)}}} [pytest args...]", file=sys.stderr)
        return 2
    ensure_venv()
    cmd = [str(python()), "-m", "pytest", TARGETS[argv[0]], *argv[1:]]
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
