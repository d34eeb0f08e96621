"""A Kafka broker of the chaos tests' own: they restart it, which must not disturb the
session broker the integration tests share (tests/integration/conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alertmanager import Alertmanager
from tests.chaos.harness import ChaosBroker, chaos_pager
from tests.live import ready, start_broker, stop_broker


def free_port_pair() -> int:
    """A port whose successor is free too (kafka.sh puts the controller on port + 1)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports for the chaos broker")


@pytest.fixture(scope="package")
def chaos_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosBroker]:
    """PROMISE_TRACKER_CHAOS_KAFKA_PORT pins the port (else a free pair is taken)."""
    port = int(os.environ.get("PROMISE_TRACKER_CHAOS_KAFKA_PORT") or free_port_pair())
    data = Path(tmp_path_factory.mktemp("chaos-kafka"))
    broker = start_broker(port, data)
    assert broker.started, f"something already serves on {port}: not ours to restart"
    try:
        ready(broker.address)
        yield ChaosBroker(port, data, broker.address)
    finally:
        stop_broker(port, data)


@pytest.fixture
def chaos_alertmanager(tmp_path: Path) -> Iterator[Alertmanager | None]:
    """An Alertmanager of the test's own, started through deploy/alertmanager/alertmanager.sh
    on a free port with its own data directory, and stopped after the test; None when it is
    not installed (the chaos test then does not check the pages)."""
    if shutil.which("prometheus-alertmanager") is None and shutil.which("alertmanager") is None:
        yield None
        return
    am = chaos_pager(tmp_path)
    am.start()
    try:
        yield am
    finally:
        am.stop()
