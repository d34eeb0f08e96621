"""``emit`` and the SDK without a broker: retiming a file, the delivery-failure message, the
warning about events older than the retention, and librdkafka's lines going through Python
logging (issue 12)."""

from __future__ import annotations

import datetime as dt
import logging

import orjson
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from promise_tracker.cli import _duration, _too_old
from promise_tracker.emit import DeliveryFailed, Emitter, InvalidEvent
from promise_tracker.retime import latest_time, shift, shift_lines
from promise_tracker.runtime.kafka import kafka_config
from promise_tracker.runtime.settings import Settings
from tests.support import ROOT

PRESTIGE = ROOT / "examples" / "prestige-portraits.jsonl"
CLOSED = "127.0.0.1:1"  # nothing listens there: connections are refused at once


def _times(line: bytes) -> list[dt.datetime]:
    event = orjson.loads(line)
    data = event["data"]
    stamps = [
        event["time"],
        data.get("expires_at"),
        *(data.get("terms", {}).get(name) for name in ("open_until", "due_at", "until")),
        *(data.get("window", {}).get(name) for name in ("opens_at", "closes_at")),  # declared
    ]
    return [dt.datetime.fromisoformat(s) for s in stamps if s]


def test_retime_moves_every_time_of_a_file_by_one_offset():
    lines = PRESTIGE.read_bytes().splitlines()
    end = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    moved = shift_lines([*lines, b"not json", b"[1]"], end)
    assert moved[-2:] == [b"not json", b"[1]"]  # lines that are not events are kept
    assert latest_time(moved) == end
    delta = end - latest_time(lines)
    for before, after in zip(lines, moved[:-2], strict=True):
        # the deadline, the expiry, the shop's declared window and the event time: all
        # moved together
        assert [t + delta for t in _times(before)] == _times(after)


def test_retime_of_a_file_without_events_changes_nothing():
    lines = [b"", b"{not json", b'{"type": "promise.issued"}']
    assert latest_time(lines) is None
    assert shift_lines(lines, dt.datetime.now(dt.UTC)) == lines
    assert shift(lines, dt.timedelta(days=1)) == lines


def test_delivery_failed_counts_the_events_and_names_the_broker():
    """Regression (issue 12): "1 event(s) were not written to Kafka: None: 15 still queued
    after 30 s": the count was of messages, an event id was None, the broker unnamed."""
    errors = [
        (f"e{n}", "not acknowledged within 30 s (the broker is down or slow)") for n in range(15)
    ]
    failed = DeliveryFailed(errors, "127.0.0.1:1")
    assert str(failed) == (
        "15 event(s) were not written to Kafka at 127.0.0.1:1: 15 not acknowledged within 30 s "
        "(the broker is down or slow); first: e0, e1, e2, ..."
    )
    refused = DeliveryFailed([("a", "Broker: Message size too large"), ("b", "Local: Timed out")])
    assert str(refused).startswith("2 event(s) were not written to Kafka: 1 Broker: Message")
    assert refused.errors == [("a", "Broker: Message size too large"), ("b", "Local: Timed out")]


def test_the_sdk_against_a_closed_port_names_every_event_not_written(capfd, caplog):
    """Leaving the ``with`` block raises DeliveryFailed with one error per event, and
    librdkafka's connection errors go to Python logging, not to the terminal."""
    caplog.set_level(logging.ERROR, logger="promise_tracker.kafka")
    emitter = Emitter(Settings(kafka=CLOSED))
    for n in range(3):
        emitter.observe_delivery(
            id=f"obs-{n}", promise_id="p-1", source="test/sdk", kind="delivered"
        )
    with pytest.raises(DeliveryFailed) as failed:
        emitter.flush(timeout=1.0)
    assert [eid for eid, _ in failed.value.errors] == ["obs-0", "obs-1", "obs-2"]
    message = str(failed.value)
    assert message.startswith("3 event(s) were not written to Kafka at 127.0.0.1:1: ")
    assert "None" not in message
    emitter.flush(timeout=0.1)  # the failed ones are not reported twice
    assert "Connect to" not in capfd.readouterr().err
    assert any("Connect to" in r.getMessage() for r in caplog.records)


def test_librdkafka_lines_are_silent_unless_logging_shows_them(capfd):
    client = AdminClient(kafka_config(Settings(kafka=CLOSED)))
    with pytest.raises(KafkaException):
        client.list_topics(timeout=0.5)
    client.poll(0.2)  # serves the queued log lines
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("seconds", "shown"), [(7 * 86_400, "7d"), (36 * 3_600, "36h"), (90, "90s"), (0.25, "0.25s")]
)
def test_durations_are_shown_as_the_settings_take_them(seconds, shown):
    assert _duration(seconds) == shown


def test_the_old_events_warning_says_how_many_and_what_to_do():
    assert _too_old(12, 12, 7 * 86_400, 4_000 * 86_400.0, retimed=False) == (
        "12 of 12 events are older than the worker's retention (7d) and will be rejected as "
        "too_late: use --retime to move them to now"
    )
    # retimed, a story longer than the retention: only a longer retention helps
    warning = _too_old(2, 12, 7 * 86_400, 29 * 86_400.0 - 1_800, retimed=True)
    assert warning.startswith("2 of 12 events are older than the worker's retention (7d)")
    assert warning.endswith(
        "the file spans 29.0 days, more than the retention: run the worker "
        "with PROMISE_TRACKER_RETENTION=30d or more"
    )


def test_the_sdk_takes_the_v2_forms_and_names_the_field_of_a_bad_one():
    """issue_promise with within_seconds and a calendar, observe_delivery paused/resumed;
    a calendar beside due_at is refused before anything is sent, naming data.terms."""
    emitter = Emitter(Settings(kafka=CLOSED))
    emitter.issue_promise(
        id="ticket-1",
        source="support/eu",
        kind="deliver_by",
        channel="email",
        terms={"within_seconds": 28800, "calendar": "support-eu"},
        text="We reply within 8 business hours",
        time="2026-04-03T17:30:00+02:00",
    )
    for kind in ("paused", "resumed"):
        emitter.observe_delivery(promise_id="ticket-1", source="support/eu", kind=kind)
    assert emitter.sent == 3
    with pytest.raises(InvalidEvent) as bad:
        emitter.issue_promise(
            id="ticket-2",
            source="support/eu",
            kind="deliver_by",
            channel="email",
            terms={"due_at": "2026-04-07T17:30:00+02:00", "calendar": "support-eu"},
        )
    assert str(bad.value).count("\n") == 0
    assert "data.terms" in str(bad.value) and "calendar goes only with within_seconds" in str(
        bad.value
    )
    assert emitter.sent == 3
    with pytest.raises(DeliveryFailed):
        emitter.flush(timeout=0.5)
