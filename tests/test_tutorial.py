"""The tutorials of docs/ run: their code is the files under tests/tutorial/, and each law passes, or fails when falsified."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from test_plugins import build_site

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "tests" / "tutorial"
INCLUDE = re.compile(r"<!-- include: (\S+) -->\n```\w*\n(.*?)```\n", re.S)


def test_the_docs_show_the_tutorial_files_verbatim():
    """Every file a page includes is one the tests below run (tests/test_docs.py checks the copies)."""
    blocks = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks |= {path: (page.name, body) for path, body in INCLUDE.findall(page.read_text())}
    assert sorted(blocks) == ["tests/tutorial/logreg_law.py", "tests/tutorial/lrlaws_logreg/__init__.py",
                              "tests/tutorial/my_law.py", "tests/tutorial/pyproject_entry_points.toml"]
    for path, (page, body) in blocks.items():
        assert body == (ROOT / path).read_text(), f"{page}'s copy of {path} differs from the file; paste the file in"
    assert blocks["tests/tutorial/my_law.py"][0] == "writing-a-law.md"
    assert blocks["tests/tutorial/logreg_law.py"][0] == "your-own-model.md"


def decisions(pytester, law: Path, monkeypatch, flip: tuple[str, str] | None = None, path: str = "") -> list[str]:
    pytester.makeini("[pytest]\n")
    text = law.read_text()
    if flip:
        assert text.count(flip[0]) == 1
        text = text.replace(*flip)
    (pytester.path / f"test_{law.stem}.py").write_text(text)
    monkeypatch.setenv("PYTHONPATH", path + str(ROOT))
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gpus=0", "--store=store", "--report-dir=rep",
                                      "--compare-to=none", timeout=300)
    reports = sorted((pytester.path / "rep").glob("*/report.json"))
    out = [e["decision"] for e in json.loads(reports[-1].read_text())["entries"]]
    shutil.rmtree(pytester.path / "rep")
    assert r.ret == (0 if out == ["pass"] else 1), r.stdout.str()
    return out


def test_write_your_own_law_passes_and_its_falsified_claim_fails(pytester, monkeypatch):
    law = TUTORIAL / "my_law.py"
    assert decisions(pytester, law, monkeypatch) == ["pass"]
    # negative control: the opposite claim on the same (stored) runs
    assert decisions(pytester, law, monkeypatch, ('0.0, ">"', '0.0, "<"')) == ["fail"]


def test_a_law_on_your_own_model_passes_and_its_falsified_claim_fails(pytester, monkeypatch, tmp_path):
    site = build_site(tmp_path / "site")
    law = TUTORIAL / "logreg_law.py"
    assert decisions(pytester, law, monkeypatch, path=f"{site}:") == ["pass"]
    assert decisions(pytester, law, monkeypatch, ('0.0, "<"', '0.0, ">"'), path=f"{site}:") == ["fail"]
