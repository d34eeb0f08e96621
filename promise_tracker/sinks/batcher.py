"""The ClickHouse sink: rows are added one by one and written in batches, per table.

Idempotent by construction: every table keeps the highest ``version`` per id, so writing a
batch twice (a sink killed before it committed its input offsets, a retry after a timeout
that had in fact succeeded) changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from promise_tracker.sinks.store import Store
from promise_tracker.sinks.tables import TABLES, Row, columns


class ClickHouseSink:
    """``add()`` rows, ``flush()`` when ``due()``: a batch is written when it has
    ``max_rows`` rows or its oldest row is ``max_age`` seconds old.

    A batch holds one row per id (the highest version): a promise opened and closed, or a
    violation emitted and changed, within one batch is written once, as the table would
    keep it anyway.

    A failed flush keeps the batch (the caller retries the same rows, which is safe);
    a successful one clears it.
    """

    def __init__(
        self,
        store: Store,
        max_rows: int = 20_000,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.max_rows = max_rows
        self.max_age = max_age
        self.clock = clock
        self._buffers: dict[str, dict[Any, Row]] = {table: {} for table in TABLES}
        self.pending = 0
        self._oldest: float | None = None
        self.written = 0
        self.written_by_table: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.batches = 0

    def add(self, table: str, row: Row) -> None:
        buffer = self._buffers[table]
        key = row.key()
        held = buffer.get(key)
        if held is None:
            buffer[key] = row
            self.pending += 1
            if self._oldest is None:
                self._oldest = self.clock()
        elif row.version >= held.version:
            buffer[key] = row

    def add_all(self, rows: Iterable[tuple[str, Row]]) -> None:
        for table, row in rows:
            self.add(table, row)

    def due(self) -> bool:
        if not self.pending:
            return False
        return self.pending >= self.max_rows or self.clock() - self._oldest >= self.max_age  # type: ignore[operator]

    def flush(self) -> int:
        """Write every table's rows; raises ``StoreUnavailable`` with the batch kept."""
        if not self.pending:
            return 0
        for table, buffer in self._buffers.items():
            if buffer:
                rows = list(buffer.values())
                self.store.insert(table, columns(table), rows)
                # a table written is not written again if a later one fails: its rows would
                # only replace themselves, but the retry is cheaper without them
                self.pending -= len(rows)
                self.written += len(rows)
                self.written_by_table[table] += len(rows)
                self._buffers[table] = {}
        self.batches += 1
        self._oldest = None
        return self.written

    def oldest_age(self) -> float:
        """Seconds the oldest row held has waited; 0 when none is held."""
        oldest = self._oldest  # read once: another thread (a metrics scrape) may call this
        return 0.0 if oldest is None else max(0.0, self.clock() - oldest)

    def drop(self) -> int:
        """Forget the batch (its input will be read again); returns the rows dropped."""
        dropped = self.pending
        self._buffers = {table: {} for table in TABLES}
        self.pending = 0
        self._oldest = None
        return dropped
