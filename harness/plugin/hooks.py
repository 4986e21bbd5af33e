"""The pytest plugin's hooks and its ``law`` fixture: each delegates to the session's ``LawSession``.

Flow per session (one direction): collect → every selected law test declares its ensembles →
plan (union, de-duplicated, minus the store) → train what is missing, in rounds of sequential
looks → tests read runs from the store and decide → report. ``harness.plugin.session`` holds
the work; the options are in ``harness.plugin.options``.
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from harness.plugin.options import add_options
from harness.plugin.session import LawSession

SESSION = pytest.StashKey[LawSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SESSION] = LawSession.configure(config)


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[SESSION].collection_finish(session)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    return session.config.stash[SESSION].runtestloop(session)


@pytest.fixture
def law(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The running law point's runs and decision sink (see ``harness.law.context.LawContext``)."""
    yield from request.config.stash[SESSION].law(request.node)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    return LawSession.record_call(item, call, (yield))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[SESSION].finish(session)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    config.stash[SESSION].summarize(terminalreporter)
