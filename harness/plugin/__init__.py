"""The pytest plugin (the pytest11 entry point ``harness.plugin``): its hooks and the ``law`` fixture."""
from harness.plugin.hooks import (
    law,
    pytest_addoption,
    pytest_collection_finish,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_runtestloop,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

__all__ = ["law", "pytest_addoption", "pytest_collection_finish", "pytest_configure", "pytest_runtest_makereport",
           "pytest_runtestloop", "pytest_sessionfinish", "pytest_terminal_summary"]
