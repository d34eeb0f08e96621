"""The history behind a check, read from the outcomes table: one query per service, channel,
kind and window, its values bound (docs/check.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from promise_tracker.check.estimate import History
from promise_tracker.streams.clock import Calendar

# decided outcomes only (kept or broken) of one group; the distribution from the rows that
# carry their measure (written since deploy/clickhouse/0003_outcome_measures.sql)
_COUNTS = """
SELECT countIf(status = 'kept') AS kept,
       countIf(status = 'broken') AS broken,
"""
_OPEN_ENDED = """
       arraySort(groupArrayIf(assumeNotNull(allowed),
                              measure IS NOT NULL AND measured IS NULL AND allowed IS NOT NULL))
           AS open_ended"""
_FROM_THE_GROUP = """
FROM {db}.outcomes FINAL
WHERE service = {service:String} AND channel = {channel:String} AND kind = {kind:String}
  AND issued_at >= fromUnixTimestamp64Micro({since_us:Int64}, 'UTC')
  AND issued_at < fromUnixTimestamp64Micro({until_us:Int64}, 'UTC')
  AND status IN ('kept', 'broken')
"""
_HISTORY = (
    _COUNTS
    + "       arraySort(groupArrayIf(assumeNotNull(measured), measured IS NOT NULL)) AS values_,"
    + _OPEN_ENDED
    + _FROM_THE_GROUP
)
# the same history, for a promise counted in a business calendar: each delivery's (issue
# time, real seconds to it), which the reader turns into the calendar's open seconds
_SPANS = (
    _COUNTS
    + "       groupArrayIf((toUnixTimestamp64Micro(issued_at), assumeNotNull(measured)),\n"
    + "                    measured IS NOT NULL) AS spans,"
    + _OPEN_ENDED
    + _FROM_THE_GROUP
)


class Rows(Protocol):
    """What a check needs of a store (sinks/store.py ClickHouseStore.rows)."""

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Group:
    """Comparable promises: the same service, channel and kind, issued in [since, until)."""

    service: str
    channel: str
    kind: str
    since: float
    until: float
    calendar: str = ""  # a deliver_by within business time: its history in open seconds


@dataclass
class HistoryReader:
    """Reads each group's history once (a campaign asks for the same groups many times)."""

    store: Rows
    measures: dict[str, str]  # kind -> its measure
    calendars: Mapping[str, Calendar] = field(default_factory=dict)  # --calendars
    cache: dict[Group, History] = field(default_factory=dict)
    # what depends on the history alone (quantiles, the tightest threshold): once per group
    derived: dict[tuple[Group, object], Any] = field(default_factory=dict)
    queries: int = 0

    def history(self, group: Group) -> History:
        found = self.cache.get(group)
        if found is None:
            found = self.cache[group] = self._read(group)
        return found

    def _read(self, group: Group) -> History:
        self.queries += 1
        row = self.store.rows(
            _SPANS if group.calendar else _HISTORY,
            {
                "service": group.service,
                "channel": group.channel,
                "kind": group.kind,
                "since_us": round(group.since * 1e6),
                "until_us": round(group.until * 1e6),
            },
        )[0]
        if group.calendar:
            # how much of the calendar's open time each delivery took, whatever calendar (if
            # any) its own promise named: "within N business hours" asks exactly that
            calendar = self.calendars[group.calendar]
            values = sorted(
                calendar.open_seconds(issued / 1e6, issued / 1e6 + float(took))
                for issued, took in row["spans"]
            )
        else:
            values = [float(v) for v in row["values_"]]
        return History(
            kept=int(row["kept"]),
            broken=int(row["broken"]),
            measure=self.measures[group.kind],
            values=values,
            open_ended=[float(v) for v in row["open_ended"]],
        )
