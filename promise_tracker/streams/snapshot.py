"""What a live worker persists per promise id, so that a restarted worker rebuilds its engine.

One entry per promise id holds everything the engine knows under that id: the promise's
state, the fingerprints of its observations (to tell duplicates), the observations still
waiting for it, and the tombstone left once it was evicted. Entries are JSON (msgspec):
timestamps keep their original offsets, so texts rendered after a restore are unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from promise_tracker.schemas.models import DeliveryObserved
from promise_tracker.streams.state import PromiseState


class Orphan(Struct, array_like=True, gc=False):
    """An observation held until its promise arrives (or its TTL runs out)."""

    event: DeliveryObserved
    raw: bytes  # the original bytes, for the reject if the promise never comes
    origin: Any  # where it came from (file and line, or topic, partition and offset)
    time: float
    stamp: float | None = None  # the watermark its TTL runs from, once counted


class Entry(Struct, kw_only=True, omit_defaults=True):
    promise_id: str
    state: PromiseState | None = None
    seen: dict[str, bytes] = {}  # observation id -> content digest
    orphans: list[Orphan] = []
    forget_at: float | None = None  # evicted: the watermark at which its tombstone goes


encode_entry = msgspec.json.Encoder().encode
decode_entry = msgspec.json.Decoder(Entry).decode
