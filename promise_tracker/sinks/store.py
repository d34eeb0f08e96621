"""Where the tables live: the embedded chdb engine (default) or a ClickHouse server.

Both backends take the same DDL and the same SQL. Values are always bound as ClickHouse
query parameters (``{name:Type}``), never formatted into the text; the only thing
substituted is the database name, an identifier checked by ``check_identifier``.

Errors say what to do with them: ``StoreUnavailable`` means try again later (the sink backs
off and stops consuming); ``StoreError`` means the request itself is wrong (a bug or a
schema that does not match): retrying will not help.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from promise_tracker.errors import StoreError, StoreUnavailable
from promise_tracker.sinks.tables import TABLES, time_columns

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
INSERT_SETTINGS = "optimize_on_insert = 0, max_threads = 1, max_insert_threads = 1"


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


def _classify(exc: BaseException) -> StoreError:
    match = _CODE.search(str(exc))
    code = int(match.group(1)) if match else None
    if code in _TRANSIENT or isinstance(exc, (OSError, EOFError, TimeoutError)):
        return StoreUnavailable(str(exc))
    return StoreError(str(exc))


class ChdbStore:
    """The embedded engine: a local directory, one writing process at a time.

    chdb allows one data directory per process, and only one process may open it: with
    several workers, one sink process owns the directory.
    """

    def __init__(self, path: str | Path, database: str):
        self.path = str(path)
        self.database = check_identifier(database)
        self._session: Any = None
        self._lock = threading.Lock()

    def connect(self) -> ChdbStore:
        from chdb import session

        Path(self.path).mkdir(parents=True, exist_ok=True)
        try:
            self._session = session.Session(self.path)
        except Exception as exc:  # chdb raises RuntimeError for a directory in use
            raise StoreError(
                f"cannot open the chdb directory {self.path}: {exc} (is another process, "
                "e.g. a sink, using it? chdb allows one process per directory)"
            ) from exc
        return self

    def _query(self, sql: str, fmt: str, params: Mapping[str, Any] | None, data: str = "") -> Any:
        """``data`` (an INSERT's rows) follows the statement as it is: never qualified."""
        if self._session is None:
            self.connect()
        with self._lock:
            try:
                return self._session.query(
                    qualify(sql, self.database) + data, fmt, params=_chdb_params(params)
                )
            except StoreError:
                raise
            except Exception as exc:
                raise _classify(exc) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._query(sql, "Null", params)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        result = self._query(sql, "JSONEachRow", params)
        data = result.bytes() if hasattr(result, "bytes") else bytes(result)
        return [orjson.loads(line) for line in data.splitlines() if line]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        """One INSERT of every row (values in the order of ``columns``). The rows travel as
        data after the statement, not as SQL, turned into columns (JSONCompactColumns): one
        encoder call per batch. Measured here on the same rows: 1.6x JSONCompactEachRow,
        which was 1.5-2x JSONEachRow."""
        if not rows:
            return
        check_identifier(table, "table")
        body = orjson.dumps(list(zip(*rows, strict=True))).decode()
        cols = ", ".join(check_identifier(c, "column") for c in columns)
        statement = (
            f"INSERT INTO {{db}}.{table} ({cols}) SETTINGS {INSERT_SETTINGS} "
            "FORMAT JSONCompactColumns\n"
        )
        self._query(statement, "Null", None, body)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _chdb_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """chdb passes a parameter's ``str()``, which the server parses in its escaped text
    form: a backslash, tab or newline in a string must be escaped, an array written out."""
    if not params:
        return None
    return {name: _param_text(value) for name, value in params.items()}


def _param_text(value: Any) -> Any:
    if value is None:
        return "\\N"  # NULL in the escaped text form
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    if isinstance(value, (list, tuple)):
        return _array_text(value)
    return value


def _array_text(values: Sequence[Any]) -> str:
    def quoted(value: Any) -> str:
        text = str(value).replace("\\", "\\\\").replace("'", "\\'")
        return f"'{text}'"

    return "[" + ",".join(quoted(v) for v in values) + "]"


class ServerStore:
    """A ClickHouse server through clickhouse-driver (native protocol), e.g.
    ``clickhouse://user:password@host:9000/``; several sinks may write to it at once."""

    def __init__(self, url: str, database: str, password: str = ""):
        self.url = url
        self.database = check_identifier(database)
        self._password = password
        self._client: Any = None

    def connect(self) -> ServerStore:
        from clickhouse_driver import Client
        from clickhouse_driver.util.helpers import parse_url

        host, kwargs = parse_url(self.url)
        if self._password:
            kwargs["password"] = self._password
        # values are bound by the server ({name:Type}), as chdb binds them
        kwargs["settings"] = {**kwargs.get("settings", {}), "server_side_params": True}
        self._client = Client(host, **kwargs)
        return self

    def _execute(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        if self._client is None:
            self.connect()
        try:
            return self._client.execute(qualify(sql, self.database), params, **kwargs)
        except Exception as exc:
            raise _classify(exc) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._execute(sql, params)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        data, columns = self._execute(sql, params, with_column_types=True)
        names = [name for name, _ in columns]
        return [dict(zip(names, row, strict=True)) for row in data]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        if not rows:
            return
        check_identifier(table, "table")
        cols = ", ".join(check_identifier(c, "column") for c in columns)
        sent_as_times = set(time_columns(table)) if table in TABLES else set()
        times = [i for i, c in enumerate(columns) if c in sent_as_times]
        values = [_native(list(row), times) for row in rows]
        self._execute(
            f"INSERT INTO {{db}}.{table} ({cols}) SETTINGS {INSERT_SETTINGS} VALUES", values
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client = None


def _native(row: list[Any], times: list[int]) -> list[Any]:
    """Rows carry times as Unix seconds (what chdb's JSON input takes, in every DateTime64
    column of promise_tracker/sinks/tables.py); the driver wants datetimes."""
    for i in times:
        if row[i] is not None:
            row[i] = dt.datetime.fromtimestamp(row[i], dt.UTC)
    return row


def open_store(url: str, chdb_path: str | Path, database: str, password: str = "") -> Store:
    """A server when a URL is configured, else the embedded engine at ``chdb_path``."""
    if url:
        return ServerStore(url, database, password)
    return ChdbStore(chdb_path, database)
