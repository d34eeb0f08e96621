"""The figures leadership reads, defined once as ClickHouse expressions over ``outcomes``.

keep-rate = kept / (kept + broken): ``expired`` promises (nothing was measured) are
unverifiable and never count as kept; ``cancelled`` ones count for neither; with nothing
decided it is NULL, not 0 or 1. The dashboards (dashboards/queries.py) and the stored
answer the demo prints (sinks/readback.py) use these; the ``keep_rate_hourly`` view of
deploy/clickhouse/0001_tables.sql says the same in SQL, and tests/unit/test_store.py holds
the view to ``KEEP_RATE``.
"""

KEPT = "countIf(status = 'kept')"
BROKEN = "countIf(status = 'broken')"
KEEP_RATE = f"{KEPT} / nullIf({KEPT} + {BROKEN}, 0)"
