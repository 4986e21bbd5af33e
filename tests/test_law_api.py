"""The law-author API: tiers declared on the law, one ``reads`` to say what a point reads, and a ``reads``
error that fails only its own test."""
from __future__ import annotations

import textwrap

import pytest

from harness import Ensemble, Recipe
from harness.law import NeedsError, NotAtThisTier, lrlaw, resolve_needs

BASE = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.1, batch_size=16, steps=10,
              options={"n_train": 64, "n_test": 32, "width": 8, "dim": 4})


def mark_of(decorator: pytest.MarkDecorator) -> pytest.Mark:
    return decorator.mark


def test_tiers_pass_the_tier_configuration_to_reads():
    m = mark_of(lrlaw("x", tiers={"smoke": BASE, "gpu": BASE.replace(steps=99)},
                      reads=lambda base, lr: {"runs": Ensemble(base.replace(lr=lr), 3)}))
    ensembles, config = resolve_needs(m, "gpu", {"lr": 0.5})
    assert config.steps == 99 and ensembles["runs"].recipe == BASE.replace(steps=99, lr=0.5)
    with pytest.raises(NotAtThisTier, match="x declares tiers smoke, gpu only"):
        resolve_needs(m, "paper", {"lr": 0.5})


def test_tiers_without_reads_are_the_ensembles():
    runs = {"a": Ensemble(BASE, 2)}
    assert resolve_needs(mark_of(lrlaw("x", tiers={"smoke": runs})), "smoke", {}) == (runs, runs)
    with pytest.raises(NeedsError, match="must give a dict name -> Ensemble, got Recipe as the configuration of tier 'smoke'"):
        resolve_needs(mark_of(lrlaw("x", tiers={"smoke": BASE})), "smoke", {})


def test_the_removed_forms_are_one_line_type_errors():
    with pytest.raises(TypeError, match="needs `tiers=`: a dict tier name -> the ensembles"):
        lrlaw("x")
    with pytest.raises(TypeError, match="takes a dict tier name -> configuration, got list"):
        lrlaw("x", tiers=["smoke"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'needs'"):  # the removed second way
        lrlaw("x", tiers={"smoke": {}}, needs=lambda cfg: {})
    with pytest.raises(TypeError, match="takes ensemble names or a function"):
        lrlaw("x", tiers={"smoke": {}}, reads=3)


def test_a_reads_with_the_wrong_signature_is_a_needs_error_of_one_line():
    m = mark_of(lrlaw("x", tiers={"smoke": {}}, reads=lambda cfg: {}))
    with pytest.raises(NeedsError) as e:
        resolve_needs(m, "smoke", {"lr": 0.1})
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("reads of law 'x' failed: TypeError:") and "called as reads(<configuration>, lr=...)" in msg


LAWS = textwrap.dedent("""
    import pytest
    from harness import Ensemble, Recipe
    from harness.law import lrlaw
    from harness.stats import LawResult

    BASE = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.1, batch_size=16, steps=10,
                  options={"n_train": 64, "n_test": 32, "width": 8, "dim": 4})

    @lrlaw("good", tiers={"smoke": {"runs": Ensemble(BASE, 2)}})
    def test_good(law):
        assert law.config == {"runs": Ensemble(BASE, 2)}
        acc = law.runs("runs").metric("test_acc")
        law.check(LawResult("n", len(acc), (2, 2), 1, ">", "pass", n=2))

    @lrlaw("gpu_only", tiers={"gpu": {"runs": Ensemble(BASE, 2)}})
    def test_gpu_only(law):
        raise AssertionError("must not run at the smoke tier")

    @lrlaw("bad_signature", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=lambda tier: {"runs": Ensemble(BASE, 2)})
    @pytest.mark.parametrize("lr", [0.1])
    def test_bad_signature(law, lr):
        raise AssertionError("must not run")

    def broken(cfg):
        return {"runs": Ensemble(cfg.replace(lr=1 / 0), 2)}

    @lrlaw("raises", tiers={"smoke": BASE}, reads=broken)
    def test_raises(law):
        raise AssertionError("must not run")
""")


def test_a_bad_reads_fails_only_its_test_with_one_line(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_laws=LAWS)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gpus=0", "--store=s", "--report-dir=rep",
                                      "--compare-to=none", "-rfEs", timeout=300)
    out = r.stdout.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out
    r.assert_outcomes(passed=1, errors=2, skipped=1)  # failed in the `law` fixture's setup
    r.stdout.fnmatch_lines([  # the error section: one line each, no traceback
        "*ERROR at setup of test_bad_signature*",
        "reads of law 'bad_signature' failed: TypeError: *called as reads(<configuration>, lr=...); it is <lambda>(tier)",
        "*ERROR at setup of test_raises*",
        "reads of law 'raises' failed: ZeroDivisionError: division by zero *"
        "called as reads(<configuration>); it is broken(cfg)",
        "=*= lrlaws =*=",
    ], consecutive=True)
    r.stdout.fnmatch_lines(["SKIPPED * not tested at tier smoke: gpu_only declares tiers gpu only"])


def test_reads_picks_the_named_ensembles_of_the_tier():
    tiers = {"smoke": {"a": Ensemble(BASE, 2), "b": Ensemble(BASE.replace(lr=0.2), 2), "c": Ensemble(BASE, 3)}}
    ensembles, config = resolve_needs(mark_of(lrlaw("x", tiers=tiers, reads=("a", "b"))), "smoke", {})
    assert list(ensembles) == ["a", "b"] and config is tiers["smoke"]
    assert list(resolve_needs(mark_of(lrlaw("x", tiers=tiers, reads="c")), "smoke", {})[0]) == ["c"]
    with pytest.raises(NeedsError, match="KeyError: \"the tier declares no ensemble 'd'; it declares \\['a', 'b', 'c'\\]\""):
        resolve_needs(mark_of(lrlaw("x", tiers=tiers, reads=("a", "d"))), "smoke", {})
