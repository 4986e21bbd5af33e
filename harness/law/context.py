"""``LawContext``: what the ``law`` fixture hands a law test — its runs, its tier's configuration, and
the place its decision goes (``check``), its notes and its figures."""
from __future__ import annotations

import contextlib
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pytest

from harness.stats import CHECK, CLAIM, FAIL, INCONCLUSIVE, PASS, SANITY, UNTESTABLE, LawResult, combine
from harness.stats.fragility import possible_decisions, possible_point_decisions, robust_failure

if TYPE_CHECKING:
    from harness.law.runs import EnsembleRuns


@dataclass
class LawContext:
    """What the ``law`` fixture hands a test: its runs, and the place its decision goes."""

    nodeid: str
    name: str
    tier: str
    params: dict[str, Any]
    ensembles: dict[str, EnsembleRuns]
    plot_dir: Path
    inconclusive: str = "skip"
    #: the value ``@lrlaw(tiers=...)`` declares for this tier
    config: Any = None
    seed_base: int = 0
    #: a sequential look: ``check`` records without raising, figures are not saved
    dry: bool = False
    #: the pytest item of the point (for ``known_failure``); None outside a session
    node: Any = None
    #: runs this point used (per ensemble, the largest) and its tier's maximum
    runs_used: int = 0
    runs_max: int = 0
    looks: int = 1
    #: the recorded finding of this tier and point (``known_failure``), None where none is
    finding: str | None = None
    #: the point runs on the user's recipe (``--recipe``): findings of the shipped recipes do not apply
    own_recipe: bool = False
    #: per claim statistic, (runs, interval side facing the threshold) at each earlier look
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    results: list[LawResult] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def runs(self, name: str) -> EnsembleRuns:
        try:
            return self.ensembles[name]
        except KeyError:
            raise KeyError(f"law {self.name!r} declared no ensemble {name!r}; declared: {sorted(self.ensembles)}") from None

    def chunks(self, array: str, *names: str, mask: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, ...]]:
        """``array`` of the named ensembles, seed-aligned chunks of seeds at a time (memory flat in N)."""
        return zip(*(self.runs(k).chunks(array, mask=mask) for k in names))

    def ok_seeds(self, *names: str) -> np.ndarray:
        """Seeds where the run of every named ensemble finished, a mask over the ensembles.

        Statistics that pair runs drop whole seeds, so the pairs stay aligned; the
        count dropped goes into the report, since divergence is itself a finding.
        """
        ok = np.logical_and.reduce([self.runs(k).ok for k in names])
        if dropped := int((~ok).sum()):
            self.note(f"{dropped} of {len(ok)} seeds dropped because a run diverged ({', '.join(names)})")
        return ok

    def require_ok(self, *names: str, why: str) -> None:
        """Fail the point (an AssertionError naming ``why``) if any run of the named ensembles diverged."""
        bad = {k: int((~self.runs(k).ok).sum()) for k in names}
        if any(bad.values()):
            raise AssertionError(f"{why}; diverged runs per ensemble: {bad}")

    def known_failure(self, reason: str | None) -> None:
        """This point's claim is a recorded finding that does not hold at this tier.

        The point still trains, reports and plots. It is an expected failure (xfail) only
        where the failure clears its threshold by more than the machine spread
        (``harness.stats.fragility``); a failure at the band's edge is reported as fragile,
        and a point that now holds fails loudly, so the finding is re-examined. A harness
        error (a broken check, an exception) is never hidden by it. ``None`` does nothing, and so
        does a point run on the user's recipe (``--recipe``): the finding was measured on the law's.
        """
        self.finding = None if self.own_recipe else reason

    def note(self, text: str) -> None:
        """A line for the report (e.g. a finding that is not itself an assertion)."""
        self.notes.append(text)

    @contextlib.contextmanager
    def figure(self, name: str, *, xlabel: str | None = None, ylabel: str | None = None, title: str | None = None,
               legend: float | None = None, logy: bool = False, **subplots_kw: Any) -> Iterator[Any]:
        """``with law.figure("scatter", xlabel=..., legend=8) as (fig, ax): ...`` saves a PNG into the report.

        The labels go on every panel's x axis and the first panel's y axis; ``title`` on
        the figure; ``legend`` (a font size) on the first panel.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(**subplots_kw)
        try:
            yield fig, ax
            panels = list(np.atleast_1d(ax).flat)
            for a in panels:
                if xlabel:
                    a.set_xlabel(xlabel)
                if logy:
                    a.set_yscale("log")
            if ylabel:
                panels[0].set_ylabel(ylabel)
            if title and len(panels) == 1:
                panels[0].set_title(title, fontsize=9)
            elif title:
                fig.suptitle(title, fontsize=10)
            if legend:
                panels[0].legend(fontsize=legend)
            if self.dry:
                return
            self.plot_dir.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.nodeid.split("::")[-1])
            path = self.plot_dir / f"{stem}-{name}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            self.plots.append(str(path))
        finally:
            plt.close(fig)

    @staticmethod
    def band(ax: Any, x: np.ndarray, curves: np.ndarray, label: str, color: str, **plot_kw: Any) -> None:
        """Curves over seeds ([N, T]) drawn as their mean and the band of 10–90% of seeds."""
        from harness.stats.schedules import curve_band

        mean, lo, hi = curve_band(curves)
        ax.plot(x, mean, color=color, label=label, **plot_kw)
        ax.fill_between(x, lo, hi, color=color, alpha=0.2)

    @property
    def claims(self) -> list[LawResult]:
        """The rows that decide the point: its claims, or, in a point without one, its sanity rows."""
        claims = [r for r in self.results if r.kind == CLAIM]
        return claims or [r for r in self.results if r.kind == SANITY]

    @property
    def broken_checks(self) -> list[LawResult]:
        """Checks (identities, probe correctness) that do not pass on any machine: errors of the harness."""
        return [r for r in self.results if r.kind == CHECK and PASS not in possible_decisions(r)]

    @property
    def fragile_rows(self) -> list[LawResult]:
        """Rows whose decision could move on another machine: those that decide the point (its claims, or its
        sanity rows where it has no claim), and any other row that may not pass."""
        deciding = {id(r) for r in self.claims}
        return [r for r in self.results if len(possible_decisions(r)) > 1
                and (id(r) in deciding or r.decision != PASS)]

    @property
    def fragile(self) -> bool:
        """The point's decision could move on another machine."""
        return len(possible_point_decisions(self.claims)) > 1

    @property
    def decision(self) -> str:
        """The point's verdict, made of its claims only; a point with checks alone passes when they hold."""
        if self.broken_checks:
            return "error"
        claims = self.claims
        if claims:
            return combine([r.decision for r in claims])
        return PASS if self.results else INCONCLUSIVE

    def _own(self, r: LawResult) -> LawResult:
        """The row as the report holds it: this law's name, and the seeds the point read (as trained)."""
        n = max((e.n for e in self.ensembles.values()), default=r.n)
        return dataclasses.replace(r, law=self.name, seeds=(self.seed_base, self.seed_base + n))

    def check(self, *results: LawResult) -> None:
        """Record the point's rows and turn their decision into a test outcome.

        Claims decide the point; a check that does not hold is an error of the
        harness (its probe or trainer is wrong), reported as such and never as a
        verdict on the law. A decision that could move on another machine is
        reported as fragile (a skip): it passes nothing, fails nothing, pins nothing.
        """
        self.results.extend(self._own(r) for r in results)
        self.results.extend(self._own(r) for r in self._independence_rows())
        if self.dry:
            return
        fragile = {id(r) for r in self.fragile_rows}
        lines = "\n".join(f"  {r.law}: {r.summary()}{' (fragile)' if id(r) in fragile else ''}" for r in self.results)
        if self.broken_checks:
            pytest.fail(f"harness error: a check of law {self.name} is broken (this is no verdict on the law):\n"
                        f"{lines}", pytrace=False)
        decision = self.decision
        if self.fragile:
            reason = f"fragile: {decision} here, but within the machine spread of its threshold ({self._fragile_reason()})"
            if self.inconclusive == "fail":  # strict: a decision that may move is no decision
                pytest.fail(reason + "\n" + lines, pytrace=False)
            raise pytest.skip.Exception(reason, _use_item_location=True)
        if self.finding is not None:
            self._finding_outcome(decision, lines)
        if decision == PASS:
            return
        if decision == FAIL:
            pytest.fail(f"law {self.name} does not hold:\n{lines}", pytrace=False)
        self._inconclusive(lines)

    def _independence_rows(self) -> list[LawResult]:
        """A check per ensemble the test read a metric of: its seeds look independent (``harness.stats.dependence``).

        Every interval assumes independent seeds; a trainer sharing state between the seeds of a chunk would
        make them all overconfident, so it is a harness error, not a verdict. Once per ensemble and point.
        """
        from harness.stats.dependence import independence_result, testable

        done = {r.statistic for r in self.results}
        rows = []
        for name, runs in self.ensembles.items():
            if runs.metrics_read and f"{name}:seed_independence_p" not in done:
                values = runs.metric(runs.metrics_read[0])
                if testable(values):  # too few seeds to test: no row, rather than a vacuous pass
                    rows.append(independence_result(name, values))
        return rows

    def _fragile_reason(self) -> str:
        r = self.fragile_rows[0]
        return f"{r.statistic} CI [{r.ci[0]:.4g}, {r.ci[1]:.4g}] vs {r.direction} {_threshold(r)}, N={r.n}"

    def _finding_outcome(self, decision: str, lines: str) -> None:
        """A recorded finding: an expected failure where it fails robustly, loud where it now holds."""
        if decision == FAIL and robust_failure(self.claims):
            pytest.xfail(f"finding at {self.tier}: {self.finding}")
        if decision == PASS:
            pytest.fail(f"law {self.name}: the recorded finding at {self.tier} ({self.finding}) no longer "
                        f"holds, the point passes; re-examine the finding:\n{lines}", pytrace=False)

    def _inconclusive(self, lines: str) -> None:
        worst = next((r for r in self.claims if r.decision == INCONCLUSIVE), None)
        if worst is None:  # every claim is untestable at this N
            r = next(r for r in self.claims if r.decision == UNTESTABLE)
            reason = (f"untestable at N={r.n}: {r.statistic} cannot be decided on so few seeds "
                      f"(testable from N={r.testable_at})")
            if self.inconclusive == "fail":
                pytest.fail(reason + "\n" + lines, pytrace=False)
            raise pytest.skip.Exception(reason, _use_item_location=True)
        reason = (f"inconclusive: CI [{worst.ci[0]:.4g}, {worst.ci[1]:.4g}] straddles threshold "
                  f"{_threshold(worst)} ({worst.statistic}, N={worst.n})")
        if self.inconclusive == "fail":
            pytest.fail(reason + "\n" + lines, pytrace=False)
        # reported at the test, not at this line, in pytest's short summary (-rs)
        raise pytest.skip.Exception(reason, _use_item_location=True)


def _threshold(r: LawResult) -> str:
    return str(list(r.threshold)) if isinstance(r.threshold, tuple) else f"{r.threshold:g}"
