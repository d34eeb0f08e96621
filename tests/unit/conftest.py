"""What several unit test modules share: a migrated database of their own on real chdb."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from promise_tracker.sinks.migrate import migrate
from promise_tracker.sinks.store import ChdbStore
from tests.support import CHDB


@pytest.fixture
def store() -> Iterator[ChdbStore]:
    """A fresh database in the unit tests' chdb directory, dropped afterwards."""
    opened = ChdbStore(CHDB, f"t_{uuid.uuid4().hex[:12]}").connect()
    migrate(opened)
    yield opened
    opened.command("DROP DATABASE IF EXISTS {db}")
    opened.close()
