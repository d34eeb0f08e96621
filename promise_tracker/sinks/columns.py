"""Values between the rows of sinks/tables.py and clickhouse-connect's columns, both ways.

Rows hold times as Unix seconds (floats); a ``DateTime64(s)`` column takes integer ticks.
A tick is the seconds cut (not rounded) to the column's precision, as ClickHouse cuts the
decimal text of a number: what the JSON inserts of earlier versions stored, to the tick.
A NaN or infinite float is NULL, as JSON has it: in a Nullable column on the way in, in
any float column on the way out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

_FLOATS = ("Float32", "Float64", "BFloat16")


def ticks(seconds: Sequence[float | None], scale: int) -> list[int | None]:
    """Unix seconds as ``DateTime64(scale)`` ticks: the float's shortest decimal text
    (``repr``) cut to the scale. ``int(x * 10**scale)`` alone is a tick off now and then:
    1796425954.1631129 * 1e6 is 1796425954163113.0 in floating point, its text cuts to
    ...163112. The two comparisons (correctly rounded divisions) put the tick right."""
    p = 10**scale
    return [
        None if x is None else (k := int(x * p)) - (k / p > x) + ((k + 1) / p <= x) for x in seconds
    ]


def encode_columns(data: list[Sequence[Any]], types: Sequence[Any]) -> list[Sequence[Any]]:
    """Columns of row values (``data[i]`` holds column i) as clickhouse-connect inserts
    them; ``types`` are its ClickHouseType objects, one per column."""
    for i, kind in enumerate(types):
        if kind.base_type == "DateTime64":
            data[i] = ticks(data[i], kind.scale)
        elif kind.base_type in _FLOATS and kind.nullable:
            data[i] = [None if x is None or not math.isfinite(x) else x for x in data[i]]
    return data


def finite_rows(result: Any) -> Iterable[Sequence[Any]]:
    """A query result's rows, with every NaN or infinite float as None."""
    floats = [i for i, t in enumerate(result.column_types) if t.base_type in _FLOATS]
    rows = result.result_rows
    if not floats:
        return rows
    return [_finite(row, floats) for row in rows]


def _finite(row: Sequence[Any], floats: list[int]) -> Sequence[Any]:
    if all(row[i] is None or math.isfinite(row[i]) for i in floats):
        return row
    fixed = list(row)
    for i in floats:
        if fixed[i] is not None and not math.isfinite(fixed[i]):
            fixed[i] = None
    return fixed
