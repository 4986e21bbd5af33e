"""report.html: self-contained (no script, no external resource), badges per point, plots embedded, the diff."""
from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.report.html import claim_and_source, write_html

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
VOID = {"meta", "img", "br", "hr", "link", "input"}


class Page(HTMLParser):
    """The page's badges, images and links, and whether its tags nest (what a browser would repair)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.badges: list[tuple[str, str]] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self._badge: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.errors.append("a script")
        for k in ("src", "href"):
            if k in a and a[k].startswith(("http:", "https:", "//")):
                self.external.append(a[k])
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "span" and "badge" in a.get("class", "").split():
            self._badge = a["class"].split()[1]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self._badge is not None:
            self.badges.append((self._badge, data))
            self._badge = None


def parse(text: str) -> Page:
    p = Page()
    p.feed(text)
    p.close()
    assert not p.errors and not p.stack and not p.external, (p.errors, p.stack, p.external)
    return p


def entry(nodeid, decision, outcome, plots=(), **kw):
    r = {"statistic": "r2", "value": 0.99, "ci": [0.98, 0.995], "threshold": 0.9, "direction": ">",
         "decision": decision, "n": 64, "kind": "claim"}
    return {"nodeid": nodeid, "law": "linearity", "params": {}, "decision": decision, "outcome": outcome,
            "results": [] if decision == "not_run" else [r], "n": 64, "seeds": [0, 64], "recipes": {"eta": "ab" * 32},
            "devices": ["cpu"], "plots": list(plots), "notes": ["2 of 64 seeds dropped"], "reason": "",
            "claim": "the learning rate has a locally linear effect on mean network outputs.",
            "source": "Keller Jordan, “a locally linear effect of the learning rate”", **kw}


def test_the_page_has_each_points_badge_claim_plots_runs_projection_and_diff(tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.png").write_bytes(PNG)
    proj = {"runs": 512, "runs_to_train": 900, "seconds": 90.0, "exponent": 0.5, "measured_scaling": False}
    data = {"run_id": "r1", "tier": "smoke", "seed_base": 0, "entries": [
        entry("laws/t.py::a", "pass", "passed", plots=["plots/a.png"]),
        entry("laws/t.py::b", "pass", "failed"),
        entry("laws/t.py::c", "fail", "xfailed"),
        entry("laws/t.py::d", "inconclusive", "skipped", projection=proj),
        entry("laws/t.py::e", "not_run", "", reason="not run: data missing")],
        "comparison": {"reference_run_id": "r0", "headline": "1 regression: laws/t.py::b (pass → fail)",
                       "points": {"laws/t.py::b": "regressed", "laws/t.py::a": "unchanged"}}}
    (tmp_path / "report.json").write_text(json.dumps(data))
    page_path = write_html(tmp_path)
    text = page_path.read_text()
    page = parse(text)
    assert page.badges == [("pass", "PASS"), ("fail", "FAIL (pass, test failed)"), ("xfail", "XFAIL (finding)"),
                           ("inconclusive", "INCONCLUSIVE"), ("not_run", "NOT_RUN")]
    assert len(page.images) == 1 and base64.b64decode(page.images[0].split(",", 1)[1]) == PNG
    assert page.images[0].startswith("data:image/png;base64,")
    assert "locally linear effect of the learning rate”" in text and "the learning rate has a locally linear" in text
    assert "decides at ~512 runs/ensemble" in text and "runs used: 64 of 64" in text and "(seeds 0–63)" in text and "<code>abababababab</code>" in text
    assert "1 regression: laws/t.py::b (pass → fail)" in text and "regressed" in text
    assert "not run: data missing" in text


def test_a_page_without_a_report_is_not_written(tmp_path):
    assert write_html(tmp_path) is None and not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("doc, claim, source", [
    ('Law `x` — a claim.\n\nSource: seed 001 (A. Author, "A Title Of Note"), §3.', "a claim.", "A. Author, “A Title Of Note”"),
    ("reference: trainers reproduce a table.", "trainers reproduce a table.", ""),
    (None, "", ""),
])
def test_claim_and_source_from_a_law_docstring(doc, claim, source):
    assert claim_and_source(doc) == (claim, source)


def test_the_laws_state_a_claim_and_a_source_title():
    import ast

    for path in sorted(Path(__file__).resolve().parents[1].joinpath("laws").glob("test_*.py")):
        claim, source = claim_and_source(ast.get_docstring(ast.parse(path.read_text())))
        assert claim and source, path.name


def test_trends_writes_an_index_page_linking_each_sessions_page(tmp_path, capsys):
    from harness.report import trends as T

    for i, run in enumerate(("20260101-smoke-1", "20260102-smoke-1")):
        d = tmp_path / run
        d.mkdir()
        data = {"version": 1, "run_id": run, "tier": "smoke", "started": float(i),
                "entries": [entry("laws/t.py::a", "pass", "passed")]}
        (d / "report.json").write_text(json.dumps(data))
    write_html(tmp_path / "20260102-smoke-1")
    assert T.main([str(tmp_path)]) == 0
    index = tmp_path / "trends" / "index.html"
    page = parse(index.read_text())
    assert str(index) in capsys.readouterr().out
    assert len(page.images) == 1  # the one trend plot, embedded
    assert '<a href="../20260102-smoke-1/report.html">20260102-smoke-1</a>' in index.read_text()
    assert "<td>20260101-smoke-1</td>" in index.read_text()  # no page to link to


def test_a_plot_gets_its_verdict_and_thresholds_drawn_in(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from harness.report.report import Entry
    from harness.report.stamp import COLOURS, stamp_entry

    (tmp_path / "plots").mkdir()
    for name in ("p.png", "f.png"):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1], [0, 1])
        fig.savefig(tmp_path / "plots" / name, dpi=110)
        plt.close(fig)
    before = plt.imread(tmp_path / "plots" / "p.png").shape
    for name, decision in (("p.png", "pass"), ("f.png", "fail")):
        e = entry("laws/t.py::a", decision, "passed" if decision == "pass" else "failed", plots=[f"plots/{name}"])
        stamp_entry(Entry(nodeid=e["nodeid"], law="linearity", params={}, decision=decision, results=e["results"],
                          plots=e["plots"], outcome=e["outcome"]), tmp_path)
    img = plt.imread(tmp_path / "plots" / "p.png")
    assert img.shape[0] > before[0]  # a banner above the plot
    banner = img[: img.shape[0] - before[0], :, :3].reshape(-1, 3)

    def has(colour: str, pixels) -> bool:
        rgb = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        return bool((abs(pixels - rgb).max(axis=1) < 0.08).any())

    assert has(COLOURS["pass"], banner) and not has(COLOURS["fail"], banner)
    failed = plt.imread(tmp_path / "plots" / "f.png")[:40, :, :3].reshape(-1, 3)
    assert has(COLOURS["fail"], failed) and not has(COLOURS["pass"], failed)
    from harness.report.stamp import row_line

    assert row_line(e["results"][0]) == "[claim] r2 = 0.99, CI [0.98, 0.995], threshold > 0.9: fail"


def test_a_long_row_widens_the_banner_instead_of_being_cut(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report.stamp import stamp

    for name, stat in (("short.png", "s"), ("long.png", "late_eta_sharpness_over_2_below_edge_f0.9" * 3)):
        fig, ax = plt.subplots(figsize=(3, 2))
        fig.savefig(tmp_path / name, dpi=110)
        plt.close(fig)
        row = {"kind": "claim", "statistic": stat, "value": 1.0, "ci": [0.5, 1.5], "threshold": 0.2,
               "direction": ">", "decision": "pass"}
        stamp(tmp_path / name, "x: PASS", "pass", [row])
    short, long_ = (plt.imread(tmp_path / n).shape[1] for n in ("short.png", "long.png"))
    assert short == 550 and long_ > 1.5 * short  # 5 in at 110 dpi; the long row needs more
