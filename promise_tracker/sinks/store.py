"""Where the tables live, through one client, clickhouse-connect: the embedded engine in this
process (chdb, a directory: the default) or a ClickHouse server over HTTP(S).

The same class and the same client code serve both, so what runs against a server (binding,
inserts, error mapping) is what the tests run on chdb. Values are always bound as ClickHouse
query parameters (``{name:Type}``, sent apart from the SQL), never formatted into the text;
the only thing substituted is the database name, an identifier checked by
``check_identifier``.

Errors say what to do with them: ``StoreUnavailable`` means try again later (the sink backs
off and stops consuming); ``StoreError`` means the request itself is wrong (a bug or a
schema that does not match): retrying will not help.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from promise_tracker.errors import StoreError, StoreUnavailable
from promise_tracker.sinks.columns import encode_columns, finite_rows
from promise_tracker.sinks.tables import TABLES, clickhouse_types

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# ClickHouse error codes that pass: a connection cut mid-answer (3, 32, 102, 236), a timeout
# (159, 209), the network (210), too many queries (202), memory (241), a table read-only or
# its disk full (242, 243), too many parts (252), an insert whose fate is unknown (319),
# ZooKeeper/Keeper (225, 999), a query cancelled by shutdown (394), a system error (425), a
# Poco (socket) exception (1000)
_TRANSIENT = {
    3,
    32,
    102,
    159,
    202,
    209,
    210,
    225,
    236,
    241,
    242,
    243,
    252,
    319,
    394,
    425,
    999,
    1000,
}
_CODE = re.compile(r"Code: (\d+)")
# Rows are deduplicated by FINAL and by merges, so an insert need not collapse its own block
# first (optimize_on_insert), and one thread parses it: the sink shares the machine with the
# worker and the broker. Measured on the same rows into chdb: 1.25-1.5x the rows/s.
INSERT_SETTINGS = {"optimize_on_insert": 0, "max_threads": 1, "max_insert_threads": 1}
SERVER_SCHEMES = ("http", "https")
_FIX = "is it running, and is PROMISE_TRACKER_CLICKHOUSE_URL its HTTP port (http://host:8123)?"


class Store(Protocol):
    """The seam between the sink and ClickHouse; tests use the real embedded engine."""

    database: str

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None: ...

    def close(self) -> None: ...


def check_identifier(name: str, what: str = "database") -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise StoreError(
            f"{what} name {name!r} is not a plain identifier: use letters, digits and _"
        )
    return name


def qualify(sql: str, database: str) -> str:
    """``{db}`` in DDL and queries becomes the (checked) database name."""
    return sql.replace("{db}", check_identifier(database))


class ClickHouseStore:
    """``where`` is a chdb directory (the embedded engine: one process may open it at a
    time, so with several workers one sink process owns it) or a server's HTTP(S) URL,
    ``http://user:password@host:8123/`` (several sinks may write to it at once). A password
    given apart needs no URL-encoding and overrides the URL's."""

    def __init__(self, where: str | Path, database: str, password: str = ""):
        self.database = check_identifier(database)
        target = str(where)
        scheme = urlsplit(target).scheme if "://" in target else ""
        if scheme and scheme not in SERVER_SCHEMES:
            raise StoreError(
                f"{scheme}:// URLs are not supported: give the ClickHouse server's HTTP "
                "interface, http://user@host:8123/ (or https://host:8443/), or a chdb directory"
            )
        self.url = target if scheme else ""  # a server's; may hold a password: never shown
        self.path = None if scheme else Path(target)
        self._password = password
        self._client: Any = None
        self._types: dict[tuple[str, tuple[str, ...]], list[Any]] = {}

    @property
    def address(self) -> str:
        """Where the rows go, without credentials (for messages and logs)."""
        if self.path is not None:
            return f"chdb at {self.path}"
        parts = urlsplit(self.url)
        port = parts.port or (8443 if parts.scheme == "https" else 8123)
        return f"ClickHouse server {parts.hostname}:{port}"

    def connect(self) -> ClickHouseStore:
        import clickhouse_connect

        try:
            if self.path is not None:
                self.path.mkdir(parents=True, exist_ok=True)
                # chdb:///<path>, given apart: a path needs no URL-encoding
                self._client = clickhouse_connect.get_client(
                    interface="chdb", path=str(self.path.resolve()), tz_mode="aware"
                )
            else:
                # no session: statements stand alone (the password given apart, if any,
                # wins over the URL's)
                self._client = clickhouse_connect.get_client(
                    dsn=self.url,
                    password=self._password,
                    tz_mode="aware",
                    autogenerate_session_id=False,
                )
        except Exception as exc:
            if self.path is not None:
                raise StoreError(
                    f"cannot open the chdb directory {self.path}: {_first_line(str(exc))} (is "
                    "another process, e.g. a sink, using it? chdb allows one process per "
                    "directory)"
                ) from exc
            raise self._error(exc) from exc
        return self

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._client is None:
            self.connect()
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except Exception as exc:
            raise self._error(exc) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._call("command", qualify(sql, self.database), parameters=params)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every row as a dict of Python values: times as aware datetimes (UTC), a NaN or
        infinite float as None (what ClickHouse's JSON formats say for them)."""
        result = self._call("query", qualify(sql, self.database), parameters=params)
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in finite_rows(result)]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        """One INSERT of every row (values in the order of ``columns``), sent in columns in
        ClickHouse's Native format; times are Unix seconds (promise_tracker/sinks/tables.py)."""
        if not rows:
            return
        columns = tuple(check_identifier(c, "column") for c in columns)
        types = self._column_types(check_identifier(table, "table"), columns)
        data = encode_columns(list(zip(*rows, strict=True)), types)
        self._call(
            "insert",
            table,
            data,
            column_names=columns,
            database=self.database,
            column_types=types,
            column_oriented=True,
            settings=INSERT_SETTINGS,
        )

    def _column_types(self, table: str, columns: tuple[str, ...]) -> list[Any]:
        """The columns' types: from the row type of sinks/tables.py (held to the DDL by
        tests/unit/test_tables.py), or, for other columns, asked of the table once."""
        key = (table, columns)
        if key not in self._types:
            from clickhouse_connect.datatypes.registry import get_from_name

            known = clickhouse_types(table) if table in TABLES else {}
            if not set(columns) <= known.keys():
                described = self.rows(f"DESCRIBE TABLE {{db}}.{check_identifier(table, 'table')}")
                known = {row["name"]: row["type"] for row in described}
            missing = [c for c in columns if c not in known]
            if missing:
                raise StoreError(f"{self.database}.{table} has no column {', '.join(missing)}")
            self._types[key] = [get_from_name(known[c]) for c in columns]
        return self._types[key]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _error(self, exc: BaseException) -> StoreError:
        """A ClickHouse error by its code; a server that cannot be reached (no code: refused,
        not resolved, timed out) is an outage, said in one line with the address."""
        code = getattr(exc, "code", None)
        if code is None:
            match = _CODE.search(str(exc))
            code = int(match.group(1)) if match else None
        if code is not None:
            kind = StoreUnavailable if code in _TRANSIENT else StoreError
            return kind(_first_line(str(exc)))
        if _network(exc):
            return StoreUnavailable(f"{self.address} cannot be reached ({_cause(exc)}): {_FIX}")
        return StoreError(_first_line(str(exc)) or type(exc).__name__)


# kept for the callers that open the embedded engine by this name: the same class
ChdbStore = ClickHouseStore


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, as the client and urllib3 nest them."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]
    return found


def _network(exc: BaseException) -> bool:
    from clickhouse_connect.driver.exceptions import OperationalError

    return any(isinstance(e, (OperationalError, OSError, EOFError)) for e in _chain(exc))


def _cause(exc: BaseException) -> str:
    chain = _chain(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any("NameResolution" in type(e).__name__ or "gaierror" in type(e).__name__ for e in chain):
        return "host name not resolved"
    if any(isinstance(e, TimeoutError) or "Timeout" in type(e).__name__ for e in chain):
        return "timed out"
    return type(chain[-1]).__name__


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def open_store(url: str, chdb_path: str | Path, database: str, password: str = "") -> Store:
    """A server when a URL is configured (or ``chdb_path`` is one), else the embedded engine
    at ``chdb_path``."""
    return ClickHouseStore(url or chdb_path, database, password)
