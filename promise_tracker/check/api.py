"""``promise-tracker serve``: the check and a promise's state as a small JSON API (FastAPI on
uvicorn; OpenAPI docs at /docs). Bad input is a 4xx naming the field, never a 500."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import orjson
from fastapi import Body, FastAPI, HTTPException, Path, Query

from promise_tracker.check.answer import MEASURES, CheckOptions, check_events
from promise_tracker.check.history import HistoryReader
from promise_tracker.errors import StoreUnavailable
from promise_tracker.runtime.process import configure_logging
from promise_tracker.runtime.settings import Settings
from promise_tracker.sinks.store import Store
from promise_tracker.streams.capabilities import Capabilities
from promise_tracker.streams.clock import Calendar

_PROMISE = """
SELECT p.promise_id AS promise_id, p.service AS service, p.channel AS channel, p.kind AS kind,
       p.text AS text, p.labels AS labels, p.issued_at AS issued_at, o.status AS status,
       o.closed_at AS closed_at, o.terms AS terms
FROM (SELECT * FROM {db}.promises FINAL WHERE promise_id = {id:String}) AS p
LEFT JOIN (SELECT * FROM {db}.outcomes FINAL WHERE promise_id = {id:String}) AS o
  ON o.promise_id = p.promise_id
"""
_VIOLATIONS = """
SELECT violation_id, reason, expected, observed, excess, unit, occurred_at, detected_at, state,
       predicted_by
FROM {db}.violations FINAL WHERE promise_id = {id:String} ORDER BY occurred_at
"""
_WARNINGS = """
SELECT warning_id, label, warn_at, due_at, time_left, state, outcome, detected_at, detail
FROM {db}.warnings FINAL WHERE promise_id = {id:String} ORDER BY warn_at
"""
FOLLOW_PATIENCE = 30.0  # seconds for capabilities.declared's leaders, at start
EXAMPLE = {
    "specversion": "1.0",
    "type": "promise.issued",
    "source": "logistics/dispatch",
    "id": "order-1234",
    "time": "2026-11-02T09:00:00Z",
    "data": {"kind": "deliver_by", "channel": "email", "terms": {"within_seconds": 172800}},
}


def create_app(
    store: Store,
    capabilities: Callable[[], Capabilities] | None = None,
    calendars: Mapping[str, Calendar] | None = None,
) -> FastAPI:
    """The API over one store; one request at a time uses it (chdb is one per process).
    ``capabilities``: the declarations every check is also judged against (serve --kafka:
    those read from the topic so far); a request's own are added to a copy. ``calendars``:
    the business calendars a deliver_by within business time is measured in."""
    calendars = calendars or {}
    app = FastAPI(
        title="promise-tracker",
        summary="Can we keep this promise? And what happened to one we made?",
        version="1",
    )
    lock = threading.Lock()

    def read(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            with lock:
                return store.rows(sql, params)
        except StoreUnavailable as exc:
            raise HTTPException(503, f"the store cannot be reached now: {exc}") from None

    @app.post("/v1/check", summary="check planned promises (promise.issued events)")
    def check(
        body: Annotated[
            dict[str, Any] | list[dict[str, Any]],
            Body(
                description="one promise.issued event, or a list; capability.declared events "
                "in the list are what its promises are checked against",
                examples=[EXAMPLE],
            ),
        ],
        window_days: Annotated[float, Query(gt=0, le=3650)] = 28,
        confidence: Annotated[float, Query(gt=0, lt=1)] = 0.95,
        min_history: Annotated[int, Query(ge=1)] = 30,
    ) -> list[dict[str, Any]]:
        listed = isinstance(body, list)
        events = body if isinstance(body, list) else [body]
        options = CheckOptions(window_days * 86_400, confidence, min_history)
        reader = HistoryReader(_Locked(store, lock), MEASURES, calendars)
        known = None if capabilities is None else capabilities()
        try:
            answers = check_events(
                [(i if listed else None, orjson.dumps(e)) for i, e in enumerate(events)],
                reader,
                options,
                capabilities=known,
            )
        except StoreUnavailable as exc:
            raise HTTPException(503, f"the store cannot be reached now: {exc}") from None
        errors = [_field_error(a["line"], a["error"]) for a in answers if "error" in a]
        if errors:
            raise HTTPException(422, errors)
        return answers

    @app.get("/v1/promises/{promise_id}", summary="a promise's status, violations, warnings")
    def promise(
        promise_id: Annotated[str, Path(min_length=1, max_length=200)],
    ) -> dict[str, Any]:
        found = read(_PROMISE, {"id": promise_id})
        if not found:
            raise HTTPException(404, f"promise_id: no promise {promise_id!r} in the store")
        row = found[0]
        terms = row.pop("terms")
        return _jsonable(
            {
                **row,
                "status": row["status"] or "open",
                "terms": None if terms is None else orjson.loads(terms),
                "violations": read(_VIOLATIONS, {"id": promise_id}),
                "warnings": read(_WARNINGS, {"id": promise_id}),
            }
        )

    return app


class _Locked:
    """The store's reads under the app's lock (the check reads through HistoryReader)."""

    def __init__(self, store: Store, lock: threading.Lock):
        self.store, self.lock = store, lock

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return self.store.rows(sql, params)


def _field_error(index: int | None, error: dict[str, str]) -> dict[str, Any]:
    """A reject's message starts with the field's path (``data.terms.max_seconds: ...``)."""
    message = error["message"]
    head = message.split(":", 1)[0]
    field = head if head and " " not in head else None
    loc: list[Any] = ["body"] + ([index] if index is not None else [])
    if field:
        loc += field.split(".")
    return {"loc": loc, "field": field, "reason": error["reason"], "msg": message}


def _jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


def serve(
    host: str,
    port: int,
    clickhouse: str | None,
    database: str | None,
    settings: Settings | None = None,
    calendars: Mapping[str, Calendar] | None = None,
) -> int:
    """Run until interrupted; prints the address (the port chosen when ``port`` is 0).
    With ``settings`` (serve --kafka), the checks are also judged against the capabilities
    declared on the broker: their topic is read to its end before the address is printed
    (for at most ``FOLLOW_PATIENCE`` seconds), then followed."""
    import uvicorn

    from promise_tracker.check.command import open_history

    store = open_history(clickhouse, database)
    declared = None
    try:  # from here on, an interrupt closes the store (and the reader) too
        if settings is not None:
            from promise_tracker.check.declared import DeclaredCapabilities

            configure_logging(settings.log_level)
            declared = DeclaredCapabilities(settings, FOLLOW_PATIENCE).start()
            if not declared.wait(FOLLOW_PATIENCE + 15):
                print(
                    f"{settings.capabilities} at {settings.kafka} not read to its end yet: "
                    "serving, and following it as it comes",
                    file=sys.stderr,
                )
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # from here on a request waits for the server instead of being refused
        print(f"serving on http://{host}:{sock.getsockname()[1]} (docs: /docs)", flush=True)
        app = create_app(store, None if declared is None else declared.current, calendars)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
    finally:
        if declared is not None:
            declared.close()
        store.close()
    print("stopped", file=sys.stderr)
    return 0
