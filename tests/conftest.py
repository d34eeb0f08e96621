"""Rules for the whole suite: a test that cannot run is a failure, not a skip.

A missing tool (Alertmanager, Prometheus, a broker that will not start) must not turn into a
green run that tested less: ``./dev test`` installs what the tests need, and a skip that
still happens is reported as a failure with its reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"this test could not run ({reason}); a skip counts as a failure"
