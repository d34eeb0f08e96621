"""The promises an objective counts, as a ClickHouse condition over ``outcomes``: one
fragment for the alert rules, the budget panels and the report, so that they count alike.

Grafana's alert queries cannot bind parameters, so every value from the objectives file (a
service is the events' free-text ``source``) reaches the SQL hex-encoded, as
``unhex('...')``: a quote or a backslash in a name never becomes SQL.
"""

from __future__ import annotations

import re

from promise_tracker.objectives.model import FILTER_KEYS, Objective

DECIDED = "status IN ('kept', 'broken')"
"""Decided promises: the total of every keep-rate (expired and cancelled count for neither)."""


def literal(text: str) -> str:
    """``text`` as a ClickHouse expression that cannot be anything but that string, with the
    text in a comment for the reader (only letters, digits and ``._/:@-`` shown: no ``*/``
    to end it early, no ``$`` for a Grafana macro)."""
    shown = _UNSHOWN.sub("?", text)[:60]
    return f"unhex('{text.encode().hex().upper()}') /* {shown} */"


_UNSHOWN = re.compile(r"[^A-Za-z0-9._/:@-]")


def selects(objective: Objective) -> str:
    """The condition on an ``outcomes`` row that its promise counts for ``objective``: its
    service, channel and kind, and its promise's labels (read from ``promises``, which holds
    them). Decided or not is left to the caller (``DECIDED``)."""
    parts = [
        f"{key} = {literal(objective.filters[key])}"
        for key in FILTER_KEYS
        if key in objective.filters
    ]
    labels = sorted(objective.labels.items())
    if labels:
        # the filters again inside: a promise has the same service, channel and kind in both
        # tables, and ``promises`` is ordered by them, so only the objective's part is read
        having = " AND ".join(parts + [f"labels[{literal(k)}] = {literal(v)}" for k, v in labels])
        parts.append(f"promise_id IN (SELECT promise_id FROM promises FINAL WHERE {having})")
    return "\n  AND ".join(parts)


def none_of(services: list[str]) -> str:
    """The condition that an ``outcomes`` row's service is none of ``services`` (1=1 when
    there are none)."""
    if not services:
        return "1=1"
    return f"service NOT IN ({', '.join(literal(s) for s in sorted(set(services)))})"
