"""What Grafana and the ClickHouse plugin (grafana-clickhouse-datasource 4.20.0, the version
provisioned) do to a panel's SQL before ClickHouse sees it, so that tests run the very text.

Two stages, in this order (notes/grafana-clickhouse.md; the plugin's CHDatasource.ts and
pkg/macros/macros.go):

1. the browser, dashboards only: ``$__conditionalAll(cond, $var)`` becomes ``1=1`` when the
   variable's value is empty or All, else ``cond``; then template variables are replaced
   (``${v:singlequote}``: each value quoted, ``'`` escaped as ``\\'``, joined by commas;
   ``$v``/``${v}``: a multi-value list as ``'a','b'``, a single value raw);
2. the plugin's backend: ``$__timeFilter(c)``, ``$__fromTime``, ``$__timeInterval(c)``,
   ``$__interval_s`` and the rest, with times as Unix seconds, both ends inclusive.

Alert rules skip stage 1; their interval is the query model's ``intervalMs``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ALL = "$__all"  # the value Grafana gives a variable when "All" is selected


@dataclass(frozen=True)
class Request:
    """One query request: the time range (Unix seconds), the interval and the variables."""

    start: float
    end: float
    interval_ms: int = 1000
    variables: Mapping[str, str | Sequence[str]] = field(default_factory=dict)


# --- stage 1: the browser --------------------------------------------------------------


def _macro_args(sql: str, open_paren: int) -> list[str]:
    """The plugin's getMacroArgs: split at commas one parenthesis deep, up to the match."""
    args: list[str] = []
    depth = 0
    last = 1
    text = sql[open_paren:]
    for match in re.finditer(r"[(),]", text):
        token = match.group()
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        if token == "," and depth == 1:
            args.append(text[last : match.end() - 1])
            last = match.end()
        if depth == 0:
            args.append(text[last : match.end() - 1])
            return args
    return args


def _value_text(value: str | Sequence[str]) -> str:
    """JavaScript's ``value.toString()``: a list joins with commas."""
    return value if isinstance(value, str) else ",".join(value)


def conditional_all(sql: str, variables: Mapping[str, str | Sequence[str]]) -> str:
    """``$__conditionalAll(cond, $var)``, innermost last occurrence first, as the plugin."""
    macro = "$__conditionalAll("
    index = sql.rfind(macro)
    while index != -1:
        params = _macro_args(sql, index + len(macro) - 1)
        if len(params) != 2:
            return sql
        phrase = params[0]
        name = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", params[1].strip())
        if name is not None and name.group() in variables:
            if _value_text(variables[name.group()]) in ("", ALL):
                phrase = "1=1"
        sql = sql.replace(f"{macro}{params[0]},{params[1]})", phrase, 1)
        index = sql.rfind(macro)
    return sql


def _singlequote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}")


def template_variables(sql: str, variables: Mapping[str, str | Sequence[str]]) -> str:
    """Grafana's template service for the formats these dashboards use; an unknown
    variable or macro (``$__...``) is left as it is, as Grafana does."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        fmt = match.group(3)
        if name not in variables:
            return match.group(0)
        value = variables[name]
        values = [value] if isinstance(value, str) else list(value)
        if fmt == "singlequote":
            return ",".join(_singlequote(v) for v in values)
        if fmt is not None:
            raise ValueError(f"format :{fmt} is not emulated here; use :singlequote")
        if isinstance(value, str):
            return value
        return ",".join(f"'{v}'" for v in values)

    return _VARIABLE.sub(replace, sql)


# --- stage 2: the plugin's backend ----------------------------------------------------------


def _datetime(seconds: float) -> str:
    return f"toDateTime({int(seconds)})"


def _datetime64(seconds: float) -> str:
    return f"fromUnixTimestamp64Milli({int(round(seconds * 1000))})"


def _date(seconds: float) -> str:
    day = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d")
    return f"toDate('{day}')"


def _one(args: list[str], name: str) -> str:
    if len(args) != 1:
        raise ValueError(f"$__{name}: expected 1 argument, received {len(args)}")
    return args[0]


def _expand(name: str, args: list[str], request: Request) -> str:
    f, t = request.start, request.end
    interval_s = max(int(request.interval_ms / 1000), 1)
    if name == "fromTime":
        return _datetime(f)
    if name == "toTime":
        return _datetime(t)
    if name == "fromTime_ms":
        return _datetime64(f)
    if name == "toTime_ms":
        return _datetime64(t)
    if name == "timeFilter":
        c = _one(args, name)
        return f"{c} >= {_datetime(f)} AND {c} <= {_datetime(t)}"
    if name == "timeFilter_ms":
        c = _one(args, name)
        return f"{c} >= {_datetime64(f)} AND {c} <= {_datetime64(t)}"
    if name == "dateFilter":
        c = _one(args, name)
        return f"{c} >= {_date(f)} AND {c} <= {_date(t)}"
    if name == "timeInterval":
        return f"toStartOfInterval(toDateTime({_one(args, name)}), INTERVAL {interval_s} second)"
    if name == "timeInterval_ms":
        ms = max(int(request.interval_ms), 1)
        return f"toStartOfInterval(toDateTime64({_one(args, name)}, 3), INTERVAL {ms} millisecond)"
    if name == "interval_s":
        return str(interval_s)
    raise ValueError(f"$__{name} is not a macro of the ClickHouse plugin")


_MACRO = re.compile(r"\$__(\w+)")


def backend_macros(sql: str, request: Request) -> str:
    """sqlds' macro pass: each ``$__name`` or ``$__name(args)`` replaced, arguments trimmed."""
    out = []
    position = 0
    for match in _MACRO.finditer(sql):
        if match.start() < position:
            continue
        name = match.group(1)
        end = match.end()
        args: list[str] = []
        if end < len(sql) and sql[end] == "(":
            raw = _macro_args(sql, end)
            args = [a.strip() for a in raw]
            end = end + sum(len(a) for a in raw) + len(raw) + 1
        out.append(sql[position : match.start()])
        out.append(_expand(name, args, request))
        position = end
    out.append(sql[position:])
    return "".join(out)


def strip_comments(sql: str) -> str:
    """The backend removes SQL comments before expanding macros."""
    sql = re.sub(r"/\*.*?\*/", "", sql, flags=re.S)
    return re.sub(r"--[^\n]*", "", sql)


def dashboard_sql(sql: str, request: Request) -> str:
    """A dashboard panel's SQL as ClickHouse receives it."""
    sql = conditional_all(sql, request.variables)
    sql = template_variables(sql, request.variables)
    return backend_macros(strip_comments(sql), request)


def alert_sql(sql: str, request: Request) -> str:
    """An alert rule's SQL as ClickHouse receives it (no browser stage)."""
    return backend_macros(strip_comments(sql), request)
