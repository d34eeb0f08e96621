"""The store against a ClickHouse server: the same client as on chdb, over HTTP. No ClickHouse
server can run here; a real HTTP server that answers as one does (its handshake, its errors
with their codes) stands in, and a closed port and a silent one are the outages."""

from __future__ import annotations

import base64
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import lz4.frame
import pytest
import yaml

from promise_tracker.errors import SettingsError
from promise_tracker.runtime.settings import Settings
from promise_tracker.sinks.runner import describe_store
from promise_tracker.sinks.store import (
    INSERT_SETTINGS,
    ClickHouseStore,
    StoreError,
    StoreUnavailable,
)
from promise_tracker.sinks.tables import ViolationEventRow, columns
from tests.support import ROOT


class FakeClickHouse(BaseHTTPRequestHandler):
    """Answers the client's handshake as ClickHouse 26.9 does, an INSERT with 200, and any
    other statement with the error in ``answer``; keeps every request it was sent."""

    answer: tuple[int, int, str] = (500, 62, "Syntax error: failed at position 1 (SYNTAX_ERROR)")
    seen: list[dict] = []

    def do_POST(self) -> None:
        body = self._body()
        params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        sql = params.get("query", "") + body.decode("utf-8", "replace")
        self.seen.append(
            {"sql": sql, "params": params, "headers": dict(self.headers), "body": body}
        )
        if "version(), timezone()" in sql:
            self._send(200, b"26.9.1.1\tUTC\n")
        elif "system.settings" in sql or sql.startswith("INSERT"):
            self._send(200, b"")  # Native, no rows: no settings to report
        else:
            status, code, text = self.answer
            reply = f"Code: {code}. DB::Exception: {text}. (version 26.9.1.1)\n".encode()
            self._send(status, reply, {"X-ClickHouse-Exception-Code": str(code)})

    do_GET = do_POST

    def _body(self) -> bytes:
        """The request's body: chunked or not, lz4-compressed (inserts) or not."""
        if self.headers.get("Transfer-Encoding") != "chunked":
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        else:
            chunks = []
            while size := int(self.rfile.readline().strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            body = b"".join(chunks)
        return lz4.frame.decompress(body) if self.headers.get("Content-Encoding") == "lz4" else body

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[FakeClickHouse]]]:
    """``host:port`` of a fake ClickHouse HTTP interface, and its handler class."""
    handler = type("Handler", (FakeClickHouse,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_an_unreachable_server_is_an_outage_said_in_one_line_without_its_password():
    store = ClickHouseStore("http://promise:s3cr3t-pw@127.0.0.1:1/?connect_timeout=2", "pt")
    with pytest.raises(StoreUnavailable) as caught:
        store.rows("SELECT 1")
    message = str(caught.value)
    assert message == (
        "ClickHouse server 127.0.0.1:1 cannot be reached (connection refused): is it running, "
        "and is PROMISE_TRACKER_CLICKHOUSE_URL its HTTP port (http://host:8123)?"
    )
    assert "s3cr3t-pw" not in message and "s3cr3t-pw" not in repr(caught.value.__cause__)
    settings = Settings(clickhouse_url=store.url)
    assert describe_store(settings) == "ClickHouse server 127.0.0.1:1, database promise_tracker"
    assert describe_store(Settings(clickhouse_url="https://h/")).startswith(
        "ClickHouse server h:8443"
    )


def test_a_server_that_does_not_answer_in_time_is_an_outage():
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        store = ClickHouseStore(f"http://127.0.0.1:{port}/?send_receive_timeout=1", "pt")
        with pytest.raises(
            StoreUnavailable, match=f"127.0.0.1:{port} cannot be reached .timed out"
        ):
            store.command("SELECT 1")


def test_a_server_error_keeps_its_code_and_says_whether_to_retry(server):
    address, handler = server
    store = ClickHouseStore(f"http://{address}/", "pt")
    with pytest.raises(StoreError) as caught:
        store.rows("SELEC 1")
    assert not isinstance(caught.value, StoreUnavailable)
    assert "code: 62" in str(caught.value) and "SYNTAX_ERROR" in str(caught.value)
    handler.answer = (500, 241, "Memory limit exceeded (MEMORY_LIMIT_EXCEEDED)")
    with pytest.raises(StoreUnavailable, match="code: 241"):
        store.command("OPTIMIZE TABLE {db}.violations FINAL")
    handler.answer = (403, 516, "promise: Authentication failed (AUTHENTICATION_FAILED)")
    with pytest.raises(StoreError, match="code: 516") as caught:
        store.rows("SELECT 1")
    assert not isinstance(caught.value, StoreUnavailable)  # a wrong password: fix it


def test_a_server_gets_values_as_parameters_and_the_password_given_apart(server):
    address, handler = server
    hostile = "it's \\ a\t'); DROP TABLE {db}.violations; --"
    store = ClickHouseStore(f"http://promise:in-url@{address}/", "pt", password="p@ss#1")
    with pytest.raises(StoreError) as caught:
        store.rows("SELECT count() FROM {db}.violations WHERE promise_text = {t:String}",
                   {"t": hostile})  # fmt: skip
    assert "in-url" not in str(caught.value)
    request = handler.seen[-1]
    assert request["sql"].startswith(
        "SELECT count() FROM pt.violations WHERE promise_text = {t:String}"
    )
    assert "DROP" not in request["sql"] and "DROP TABLE {db}" in request["params"]["param_t"]
    credentials = base64.b64decode(request["headers"]["Authorization"].split()[1]).decode()
    assert credentials == "promise:p@ss#1"  # no URL-encoding needed


def test_a_server_gets_an_insert_as_native_columns_with_the_insert_settings(server):
    address, handler = server
    store = ClickHouseStore(f"http://{address}/", "pt")
    store.insert("violation_events", columns("violation_events"), [
        ViolationEventRow("v1", "e1", "p1", "s", "late", "active", 1767268800.5, 1767268801.0, 3)
    ])  # fmt: skip
    request = handler.seen[-1]
    statement, native = request["body"].split(b"\n", 1)
    assert statement == (
        b"INSERT INTO `pt`.`violation_events` (`violation_id`, `event_id`, `promise_id`, "
        b"`service`, `reason`, `state`, `occurred_at`, `detected_at`, `version`) FORMAT Native"
    )
    assert struct.pack("<q", 1767268800_500000) in native  # occurred_at, in microseconds
    assert {k: request["params"][k] for k in INSERT_SETTINGS} == {"optimize_on_insert": "0",
        "max_threads": "1", "max_insert_threads": "1"}  # fmt: skip


def test_a_native_protocol_url_is_refused_with_the_fix_and_without_its_password():
    native = "clickhouse://writer:n4tive-pw@db:9000/"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PROMISE_TRACKER_CLICKHOUSE_URL": native})
    message = str(caught.value)
    assert "http://user@host:8123/" in message and "n4tive-pw" not in message
    with pytest.raises(StoreError, match="http://user@host:8123/") as refused:  # replay's
        ClickHouseStore(native, "pt")
    assert "n4tive-pw" not in str(refused.value)


def test_docker_compose_points_the_pipeline_at_the_servers_http_port():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    url = compose["x-pipeline"]["environment"]["PROMISE_TRACKER_CLICKHOUSE_URL"]
    url = url.replace("${CLICKHOUSE_USER:-promise}", "promise")
    settings = Settings.from_env({"PROMISE_TRACKER_CLICKHOUSE_URL": url})
    assert (
        ClickHouseStore(settings.clickhouse_url, "pt").address
        == "ClickHouse server clickhouse:8123"
    )
