"""One real Kafka broker (deploy/kafka/kafka.sh) for the integration tests.

PROMISE_TRACKER_TEST_KAFKA_PORT picks its port (19092); a broker already serving there is
used as it is and left running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.live import ready, start_broker, stop_broker
from tests.support import ROOT

PORT = int(os.environ.get("PROMISE_TRACKER_TEST_KAFKA_PORT", "19092"))
DATA = ROOT / ".data" / f"test-kafka-{PORT}"


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    broker = start_broker(PORT, DATA)
    ready(broker.address)
    yield broker.address
    if broker.started:
        stop_broker(PORT, DATA)
