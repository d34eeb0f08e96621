"""Glue between grafana-foundation-sdk and the ClickHouse data source plugin.

The SDK (pinned 0.0.21) has builders for every core panel and for Prometheus queries but no
ClickHouse query, so this module adds one: the plugin's v4 target (``editorType: sql``,
``rawSql``, an integer ``format``; docs/dashboards.md), registered under the plugin id so
that the SDK also reads such targets back.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus as gprom
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import DataSourceRef
from grafana_foundation_sdk.models.dashboard import VariableOption, VariableRefresh, VariableSort

CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"
CLICKHOUSE_UID = "clickhouse"  # fixed in deploy/grafana/provisioning/datasources
PROMETHEUS_UID = "prometheus"

CLICKHOUSE = DataSourceRef(type_val=CLICKHOUSE_PLUGIN, uid=CLICKHOUSE_UID)
PROMETHEUS = DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)

# the plugin's ``format``: how the backend shapes the result
TIME_SERIES = 0
TABLE = 1


class ClickHouseQuery(cogvariants.Dataquery):
    """A raw-SQL target of grafana-clickhouse-datasource (plugin v4)."""

    def __init__(self, sql: str = "", fmt: int = TABLE, ref_id: str = "A") -> None:
        self.sql = sql
        self.fmt = fmt
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": {"type": CLICKHOUSE_PLUGIN, "uid": CLICKHOUSE_UID},
            "editorType": "sql",
            "format": self.fmt,
            "queryType": "timeseries" if self.fmt == TIME_SERIES else "table",
            "rawSql": self.sql.strip(),
            "refId": self.ref_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClickHouseQuery:
        return cls(data.get("rawSql", ""), int(data.get("format", TABLE)), data.get("refId", "A"))


cogruntime.register_dataquery_variant(
    cogruntime.DataqueryConfig(
        identifier=CLICKHOUSE_PLUGIN, from_json_hook=ClickHouseQuery.from_json
    )
)


class SQL(cogbuilder.Builder[ClickHouseQuery]):
    """Builder of a ClickHouse target, as the SDK's builders are used."""

    def __init__(self, sql: str, fmt: int = TABLE, ref_id: str = "A") -> None:
        self._internal = ClickHouseQuery(sql, fmt, ref_id)

    def build(self) -> ClickHouseQuery:
        return self._internal


def promql(expr: str, legend: str = "", ref_id: str = "A") -> gprom.Dataquery:
    """A Prometheus range query target."""
    query = gprom.Dataquery().expr(expr).range().ref_id(ref_id)
    return query.legend_format(legend) if legend else query


def multi_variable(name: str, label: str, sql: str) -> gdash.QueryVariable:
    """A multi-value ClickHouse variable with "All" (which then filters nothing)."""
    return (
        gdash.QueryVariable(name)
        .label(label)
        .datasource(CLICKHOUSE)
        .query(sql)
        .multi(True)
        .include_all(True)
        .current(VariableOption(selected=True, text=["All"], value=["$__all"]))
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )


def to_json(board: gdash.Dashboard) -> str:
    """Deterministic JSON: sorted keys, two-space indent, a final newline."""
    return json.dumps(board.build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def numbered(board: gdash.Dashboard) -> gdash.Dashboard:
    """Panel ids in layout order, so that links to a panel (viewPanel=N) stay valid."""
    for number, panel in enumerate(board.build().panels or [], start=1):
        panel.id_val = number
    return board
