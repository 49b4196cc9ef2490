"""End-to-end steps share one lab and depend on each other: once one fails, skip the rest
(their failures would only echo the first one)."""
from __future__ import annotations

import pytest

_FAILED: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        _FAILED.append(item.name)


def pytest_runtest_setup(item):
    if _FAILED and item.name != "test_lab_down_leaves_nothing":  # always clean up
        pytest.skip(f"an earlier end-to-end step failed: {_FAILED[0]}")
