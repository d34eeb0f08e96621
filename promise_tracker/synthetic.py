#!/usr/bin/env python3
"""A realistic CloudEvents stream for benchmarking ``promise-tracker replay``.

    python3 bench/generate.py OUT.jsonl --events 1000000 [--open-promises 20000] [--seed 1]

The stream mixes ``promise.issued`` and ``delivery.observed`` events (SPEC section 1) the way
a busy day looks on the wire:

* all five promise kinds, in equal shares; about 30 % of promises are broken, by every
  violation reason of SPEC section 3 (``enforced_early``, ``wait_exceeded``,
  ``too_many_steps``, ``goal_not_reached``, ``delivered_late``, ``not_delivered``,
  ``channel_unavailable``), about 2 % are cancelled, ``max_wait`` promises sometimes expire;
* promises are issued at a steady rate and each one's window (``open_until`` / ``due_at`` /
  ``until`` / ``expires_at``) ends 3 to 48 hours after it is issued, so the number of promises
  whose window is open stays close to ``open_promises`` however long the stream is: a stream
  ten times longer spans ten times more event time. The file starts with the backlog a
  running system would have (promises issued in the 48 hours before the stream's start whose
  windows are still open), so it is in steady state from its first minutes;
* observations fall inside their promise's window (late deliveries: up to 6 h after it);
* about 2 % of events arrive up to 4 minutes late (bounded disorder: an observation may even
  arrive before its promise), about 1 % of lines are exact duplicates of an earlier line;
* about 0.05 % of lines are orphans (observations of a promise that never comes) and about
  0.1 % are junk (invalid JSON, unknown type, invalid event), each of which the replay must
  reject.

Besides the file, ``generate`` returns (and writes to ``OUT.jsonl.meta.json``) what a correct
replay must report about it: outcome counts by status, active violations by reason, rejects
by reason, duplicates and late events. Those figures come from a small independent
evaluation of SPEC section 3 over exactly the lines written, so a cut-off at the end of the
stream (a promise whose delivery did not make it into the file) is accounted for.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import math
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

VERSION = 1  # bump when the stream's content changes: cached streams are regenerated

START = int(dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp())
HOUR = 3600
LMIN, LMAX = 3 * HOUR, 48 * HOUR  # a promise's window: issue time + [LMIN, LMAX]
MEAN_WINDOW = (LMIN + LMAX) / 2

P_BROKEN = 0.30
P_CANCELLED = 0.02
P_EXPIRED = 0.13  # max_wait only: nothing was ever measured
P_LATE_ARRIVAL = 0.02  # arrives up to MAX_DISORDER seconds after its event time
MAX_DISORDER = 240
P_DUPLICATE = 0.01
DUPLICATE_DELAY = 600  # a duplicate follows its original within this many seconds
P_JUNK = 0.001  # per line
P_ORPHAN = 0.0017  # per promise (about 0.05 % of lines)

INF = math.inf
ISSUE, OBS, DUP, ORPHAN = 0, 1, 2, 3

KINDS = ("deadline", "max_wait", "max_steps", "deliver_by", "channels_available")
CHANNELS = ("email", "card", "web", "app", "sms", "phone", "mail", "in_person", "other")
SERVICES = {
    "deadline": ("prestige/marketing", "school/admissions", "bank/offers"),
    "max_wait": ("support/callcenter", "telco/support", "bank/cards"),
    "max_steps": ("shop/checkout", "prestige/web", "gov/benefits"),
    "deliver_by": ("logistics/dispatch", "shop/fulfilment", "pharmacy/orders"),
    "channels_available": ("gov/marketplace", "bank/branches", "telco/network"),
}
OBSERVERS = {
    "deadline_enforced": "ops/scheduler",
    "access_denied": "web/gateway",
    "hold_time": "telephony/acd",
    "page_reached": "web/analytics",
    "delivered": "logistics/tracking",
    "channel_status": "ops/status-monitor",
    "cancelled": "crm/case-management",
}
TEXTS = {
    "deadline": "You may choose your options online until the date on this card.",
    "max_wait": "A representative will answer after a short wait.",
    "max_steps": "Complete your order online in a few easy steps.",
    "deliver_by": "Your order will be delivered by the date shown.",
    "channels_available": "Apply by phone, by mail or in person.",
}
PRIMARY_CHANNEL = {
    "deadline": ("card", "email", "mail"),
    "max_wait": ("phone", "app", "web"),
    "max_steps": ("web", "app", "email"),
    "deliver_by": ("email", "sms", "web"),
    "channels_available": ("mail", "web", "card"),
}
LABELS = [
    {"team": team, "campaign": campaign, "severity": severity}
    for team in ("growth", "care", "fulfilment", "platform")
    for campaign in ("spring-2026", "renewals", "always-on")
    for severity in ("page", "ticket")
]
PAGES = ("home", "sign-in", "search", "product", "cart", "account", "help", "shipping")
GOAL = "order-confirmed"
EMPTY: dict = {}
HOLD_LIMITS = (120, 300, 600, 900, 1800, 3600)

# --- timestamps: integer Unix seconds to RFC 3339, fast --------------------------------

_HMS = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
_HMS_Z = [x + "Z" for x in _HMS]
_HMS_CET = [x + "+01:00" for x in _HMS]
_DAYS: dict[int, str] = {}


def _day(d: int) -> str:
    prefix = _DAYS.get(d)
    if prefix is None:
        prefix = _DAYS[d] = dt.datetime.fromtimestamp(d * 86400, dt.UTC).strftime("%Y-%m-%dT")
    return prefix


def ts(t: int) -> str:
    """RFC 3339, UTC."""
    d, r = divmod(t, 86400)
    return (_DAYS.get(d) or _day(d)) + _HMS_Z[r]


def ts_cet(t: int) -> str:
    """The same instant written with a +01:00 offset (some emitters are not in UTC)."""
    d, r = divmod(t + HOUR, 86400)
    return (_DAYS.get(d) or _day(d)) + _HMS_CET[r]


# --- junk: lines a replay must reject, with the reason it must give ----------------------


def _junk(choice: int, t: int, n: int, seed: int) -> tuple[bytes, str]:
    stamp = ts(t)
    if choice == 0:
        whole = orjson.dumps(
            {
                "specversion": "1.0",
                "type": "promise.issued",
                "source": "shop/checkout",
                "id": f"junk-{seed}-{n}",
                "time": stamp,
                "data": {"kind": "deadline", "channel": "web", "terms": {"open_until": stamp}},
            }
        )
        return whole[: len(whole) // 2], "invalid_json"  # a truncated message
    if choice == 1:
        return b"HTTP/1.1 502 Bad Gateway", "invalid_json"
    if choice == 2:
        return b'{"specversion":"1.0","id":"junk-\xff\xfe","type":"promise.issued"}', "invalid_json"
    event: dict = {
        "specversion": "1.0",
        "type": "promise.issued",
        "source": "shop/checkout",
        "id": f"junk-{seed}-{n}",
        "time": stamp,
        "data": {"kind": "deadline", "channel": "web", "terms": {"open_until": ts(t + 86400)}},
    }
    if choice == 3:
        event["type"] = "promise.amended"
        return orjson.dumps(event), "unknown_type"
    if choice == 4:
        del event["time"]
    elif choice == 5:
        event["time"] = "next tuesday"
    elif choice == 6:
        event["time"] = stamp[:-1]  # no offset
    elif choice == 7:
        event["data"]["kind"] = "warranty"
    elif choice == 8:
        event["data"]["terms"] = {"due_at": stamp}  # terms of another kind
    elif choice == 9:
        event["data"]["channel"] = "pigeon"
    else:
        event = {
            "specversion": "1.0",
            "type": "delivery.observed",
            "source": "telephony/acd",
            "id": f"junk-{seed}-{n}",
            "time": stamp,
            "data": {"promise_id": "x", "kind": "hold_time", "value": {"seconds": -5}},
        }
    return orjson.dumps(event), "invalid_event"


JUNK_CHOICES = 11


# --- the expected verdict (SPEC section 3) over the lines actually written --------------


def expected_verdict(kind: str, t0: int, close, param, obs: list, w: int) -> tuple[str, list[str]]:
    """Status and violation reasons of one promise; obs = [(time, id, kind, value)]."""
    c = min((o[0] for o in obs if o[2] == "cancelled"), default=INF)
    limit = close if close is not None else INF
    if kind == "deadline":
        if any(
            o[2] in ("deadline_enforced", "access_denied") and o[0] < close and o[0] < c
            for o in obs
        ):
            return "broken", ["enforced_early"]
        if c < close:
            return "cancelled", []
        return ("kept" if w >= close else "open"), []
    if kind == "max_wait":
        holds = [o for o in obs if o[2] == "hold_time" and o[0] < c]
        if any(o[3] > param for o in holds):
            return "broken", ["wait_exceeded"]
        if holds:
            return "kept", []
        if c < limit:
            return "cancelled", []
        return ("expired" if close is not None and w >= close else "open"), []
    if kind == "max_steps":
        limit_steps, goal = param
        views = sorted((o[0], o[1], o[3]) for o in obs if o[2] == "page_reached" and o[0] < c)
        for count, view in enumerate(views, 1):
            if view[2] == goal:
                return ("broken", ["too_many_steps"]) if count > limit_steps else ("kept", [])
        if c < limit:
            return "cancelled", []
        if close is not None and w >= close:
            return "broken", ["goal_not_reached"]
        return "open", []
    if kind == "deliver_by":
        d = min((o[0] for o in obs if o[2] == "delivered" and o[0] < c), default=None)
        if d is not None:
            return ("kept", []) if d <= close else ("broken", ["delivered_late"])
        if c < close:
            return "cancelled", []
        return ("broken", ["not_delivered"]) if w >= close else ("open", [])
    down = {
        o[3][0]
        for o in obs
        if o[2] == "channel_status"
        and not o[3][1]
        and o[3][0] in param
        and t0 <= o[0] < close
        and o[0] < c
    }
    if down:
        return "broken", ["channel_unavailable"] * len(down)
    if c < close:
        return "cancelled", []
    return ("kept" if w >= close else "open"), []


# --- the generator -----------------------------------------------------------------------


def generate(path, events: int, open_promises: int = 20000, seed: int = 1) -> dict:
    """Write ``events`` lines of CloudEvents to ``path``; return (and store) what to expect."""
    if events < 1 or open_promises < 1:
        raise ValueError("events and open_promises must be at least 1")
    started = time.perf_counter()
    path = Path(path)
    rng = random.Random(seed)
    rnd, randint, choice = rng.random, rng.randint, rng.choice
    dumps = orjson.dumps
    nl = orjson.OPT_APPEND_NEWLINE
    push, pop = heapq.heappush, heapq.heappop

    interval = MEAN_WINDOW / open_promises  # seconds between two promises
    clock = float(START - LMAX)  # the backlog: promises issued before START still open at START
    heap: list = []  # (arrival, seq, line, promise number, role, time, observation)
    done: list = []  # (close time or -1, promise number): all its events written
    plans: dict[int, list] = {}  # promise number -> [kind, t0, close, param, pending, obs, issued]
    closes: list[int] = []  # window ends of issued promises, to sample the open count
    open_samples: list[int] = []
    seq = written = n_promise = n_obs = 0
    wm = -1  # the watermark a replay will have: largest time of an accepted line so far
    late = duplicates = orphans = obs_written = 0
    junk: Counter = Counter()
    status: Counter = Counter()
    reasons: Counter = Counter()
    unknown_promise = promises = not_issued = 0
    first_time = None
    sp = f"{seed}"

    def finalize(plan: list, w: int) -> None:
        nonlocal promises, not_issued, unknown_promise
        kind, t0, close, param, _, obs, issued = plan
        if not issued:  # cut off at the end: its observations wait in vain
            not_issued += 1
            unknown_promise += len(obs)
            return
        promises += 1
        st, why = expected_verdict(kind, t0, close, param, obs, w)
        status[st] += 1
        for reason in why:
            reasons[reason] += 1

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb", buffering=1 << 20) as out:
        write = out.write
        while written < events:
            t0 = int(clock)
            clock += interval
            # 1. write every line whose arrival time has come
            while heap and heap[0][0] <= t0:
                arrival, _, line, number, role, t, info = pop(heap)
                if rnd() < P_JUNK:
                    bad, why = _junk(int(rnd() * JUNK_CHOICES), t, written, seed)
                    write(bad + b"\n")
                    junk[why] += 1
                    written += 1
                    if written >= events:
                        break
                write(line)
                written += 1
                if role == DUP:
                    duplicates += 1
                else:
                    if first_time is None:
                        first_time = t
                    if t < wm:
                        late += 1
                    elif t > wm:
                        wm = t
                    if role == ORPHAN:
                        orphans += 1
                        obs_written += 1
                    else:
                        plan = plans[number]
                        if role == ISSUE:
                            plan[6] = True
                        else:
                            plan[5].append(info)
                            obs_written += 1
                        plan[4] -= 1
                        if plan[4] == 0:
                            push(done, (-1 if plan[2] is None else plan[2], number))
                    if rnd() < P_DUPLICATE:
                        seq += 1
                        push(
                            heap,
                            (
                                arrival + randint(1, DUPLICATE_DELAY),
                                seq,
                                line,
                                number,
                                DUP,
                                t,
                                None,
                            ),
                        )
                while done and done[0][0] <= wm:
                    finalize(plans.pop(pop(done)[1]), wm)
                if written >= events:
                    break
            if written >= events:
                break

            # 2. the next promise and everything that will be observed about it
            window = randint(LMIN, LMAX)
            close: int | None  # None: a max_wait promise decided by its hold alone
            close = t0 + window
            if close <= START + 600:
                continue  # backlog: it would have closed before the stream starts
            if t0 >= START:
                while closes and closes[0] <= t0:
                    pop(closes)
                if n_promise % 1000 == 0:
                    open_samples.append(len(closes))
            push(closes, close)
            number = n_promise
            n_promise += 1
            pid = f"prm-{sp}-{number:08d}"
            kind = KINDS[int(rnd() * 5)]
            start = max(t0, START)  # observations of backlog promises start with the stream
            span = close - start - 2

            def at(f: float, _start=start, _span=span) -> int:
                return _start + 1 + int(f * _span)

            u = rnd()
            obs: list = []  # (time, kind, value, oracle value)
            data: dict = {"kind": kind, "channel": choice(PRIMARY_CHANNEL[kind])}
            expires = None
            param: int | tuple[int, str] | frozenset[str] | None = None  # the kind's terms
            if kind == "deadline":
                data["terms"] = {"open_until": ts(close)}
                if u < P_BROKEN:
                    if rnd() < 0.5:
                        obs.append((at(rnd() * 0.95), "deadline_enforced", EMPTY, None))
                    else:
                        obs.append(
                            (
                                at(rnd() * 0.95),
                                "access_denied",
                                {"reason": "selection closed"},
                                None,
                            )
                        )
                elif u < P_BROKEN + P_CANCELLED:
                    c = at(rnd() * 0.8)
                    obs.append((c, "cancelled", {"reason": "campaign withdrawn"}, None))
                    if rnd() < 0.5:  # after the cancellation: does not count
                        obs.append((randint(c + 1, close), "access_denied", EMPTY, None))
                else:
                    if rnd() < 0.5:  # the window closes on time
                        obs.append((close, "deadline_enforced", EMPTY, None))
                    if rnd() < 0.2:
                        obs.append(
                            (close + randint(1, 7200), "access_denied", {"reason": "closed"}, None)
                        )
            elif kind == "max_wait":
                param = choice(HOLD_LIMITS)
                data["terms"] = {"max_seconds": param}
                expires = close
                if u < P_BROKEN:
                    if rnd() < 0.3:  # a first call within the limit, then one over it
                        obs.append(
                            (at(rnd() * 0.4), "hold_time", {"seconds": randint(5, param)}, None)
                        )
                    obs.append(
                        (
                            at(0.4 + rnd() * 0.6),
                            "hold_time",
                            {"seconds": param + randint(1, 3 * param)},
                            None,
                        )
                    )
                elif u < P_BROKEN + P_CANCELLED:
                    obs.append((at(rnd()), "cancelled", EMPTY, None))
                elif u < P_BROKEN + P_CANCELLED + P_EXPIRED:
                    pass  # nobody measured anything
                else:
                    seconds = param if rnd() < 0.05 else round(rnd() * param, 1)
                    obs.append((at(rnd()), "hold_time", {"seconds": seconds}, None))
                    if rnd() < 0.3:
                        expires = None  # decided by the hold alone
                if expires is not None:
                    data["expires_at"] = ts(expires)
                close = expires
            elif kind == "max_steps":
                limit_steps = randint(3, 8)
                param = (limit_steps, GOAL)
                data["terms"] = {"max_steps": limit_steps, "goal": GOAL}
                data["expires_at"] = ts(close)
                if u < P_BROKEN * 0.6:
                    views = limit_steps + randint(1, 4)
                    path_ = [choice(PAGES) for _ in range(views - 1)] + [GOAL]
                elif u < P_BROKEN:
                    path_ = [choice(PAGES) for _ in range(randint(1, 5))]  # never reaches it
                elif u < P_BROKEN + P_CANCELLED:
                    path_ = [choice(PAGES) for _ in range(randint(0, 2))] + ["cancel"]
                else:
                    path_ = [choice(PAGES) for _ in range(randint(0, limit_steps - 1))] + [GOAL]
                    if rnd() < 0.3:
                        path_.append("account")  # after the goal: does not count
                first = at(rnd() * 0.7)
                t = first
                for page in path_:
                    if page == "cancel":
                        obs.append((t, "cancelled", EMPTY, None))
                    else:
                        obs.append((t, "page_reached", {"page": page}, page))
                    t += randint(0, 120)  # same-second views happen: ties go by id
                    if t >= close:
                        t = close - 1
            elif kind == "deliver_by":
                data["terms"] = {"due_at": ts(close)}
                if u < P_BROKEN * 0.5:
                    obs.append((close + randint(60, 6 * HOUR), "delivered", EMPTY, None))
                elif u < P_BROKEN:
                    pass  # never delivered
                elif u < P_BROKEN + P_CANCELLED:
                    c = at(rnd() * 0.8)
                    obs.append((c, "cancelled", {"reason": "out of stock"}, None))
                    if rnd() < 0.3:  # delivered anyway, after the cancellation: does not count
                        obs.append((randint(c + 1, close), "delivered", EMPTY, None))
                else:
                    d = at(rnd())
                    obs.append((d, "delivered", EMPTY, None))
                    if rnd() < 0.1:  # a second parcel
                        obs.append((randint(d, close + HOUR), "delivered", EMPTY, None))
            else:  # channels_available
                listed = rng.sample(CHANNELS, randint(1, 3))
                param = frozenset(listed)
                data["terms"] = {"channels": listed, "until": ts(close)}
                if rnd() < 0.5:  # a heartbeat
                    ch = choice(listed)
                    obs.append(
                        (
                            at(rnd()),
                            "channel_status",
                            {"channel": ch, "available": True},
                            (ch, True),
                        )
                    )
                if u < P_BROKEN:
                    for ch in listed[: 2 if len(listed) > 1 and rnd() < 0.3 else 1]:
                        t = at(rnd() * 0.9)
                        obs.append(
                            (t, "channel_status", {"channel": ch, "available": False}, (ch, False))
                        )
                        obs.append(
                            (
                                randint(t, close),
                                "channel_status",
                                {"channel": ch, "available": True},
                                (ch, True),
                            )
                        )
                elif u < P_BROKEN + P_CANCELLED:
                    c = at(rnd() * 0.5)
                    obs.append((c, "cancelled", EMPTY, None))
                    ch = listed[0]
                    obs.append(
                        (
                            randint(c + 1, close - 1),
                            "channel_status",
                            {"channel": ch, "available": False},
                            (ch, False),
                        )
                    )
                else:
                    other = choice([ch for ch in CHANNELS if ch not in param])
                    if rnd() < 0.2:  # a channel nobody promised goes down
                        obs.append(
                            (
                                at(rnd()),
                                "channel_status",
                                {"channel": other, "available": False},
                                (other, False),
                            )
                        )
                    if rnd() < 0.1:  # down right at the end of the window: does not count
                        ch = listed[0]
                        obs.append(
                            (
                                close,
                                "channel_status",
                                {"channel": ch, "available": False},
                                (ch, False),
                            )
                        )
            if rnd() < 0.9:
                data["text"] = TEXTS[kind]
            if rnd() < 0.8:
                data["labels"] = LABELS[number % len(LABELS)]
            promise = {
                "specversion": "1.0",
                "type": "promise.issued",
                "source": choice(SERVICES[kind]),
                "id": pid,
                "time": ts(t0) if number % 5 else ts_cet(t0),
                "subject": f"customer/{rng.getrandbits(32):08x}",
                "datacontenttype": "application/json",
                "data": data,
            }
            plans[number] = [kind, t0, close, param, len(obs) + 1, [], False]
            arrival = t0 + randint(1, MAX_DISORDER) if rnd() < P_LATE_ARRIVAL else t0
            seq += 1
            push(heap, (arrival, seq, dumps(promise, option=nl), number, ISSUE, t0, None))
            for t, okind, value, oracle_value in obs:
                oid = f"obs-{sp}-{n_obs:09d}"
                n_obs += 1
                event = {
                    "specversion": "1.0",
                    "type": "delivery.observed",
                    "source": OBSERVERS[okind],
                    "id": oid,
                    "time": ts(t) if n_obs % 7 else ts_cet(t),
                    "data": {"promise_id": pid, "kind": okind, "value": value},
                }
                if okind == "hold_time":
                    oracle_value = value["seconds"]
                arrival = t + randint(1, MAX_DISORDER) if rnd() < P_LATE_ARRIVAL else t
                seq += 1
                push(
                    heap,
                    (
                        arrival,
                        seq,
                        dumps(event, option=nl),
                        number,
                        OBS,
                        t,
                        (t, oid, okind, oracle_value),
                    ),
                )
            if rnd() < P_ORPHAN:  # an observation of a promise that never comes
                t = t0 + randint(1, HOUR)
                oid = f"obs-{sp}-{n_obs:09d}"
                n_obs += 1
                event = {
                    "specversion": "1.0",
                    "type": "delivery.observed",
                    "source": "logistics/tracking",
                    "id": oid,
                    "time": ts(t),
                    "data": {
                        "promise_id": f"ghost-{sp}-{number:08d}",
                        "kind": "delivered",
                        "value": EMPTY,
                    },
                }
                seq += 1
                push(heap, (t, seq, dumps(event, option=nl), number, ORPHAN, t, None))
    for plan in plans.values():
        finalize(plan, wm)
    os.replace(tmp, path)

    broken = status.get("broken", 0)
    closed = promises - status.get("open", 0)
    meta = {
        "generator_version": VERSION,
        "events": events,
        "open_promises": open_promises,
        "seed": seed,
        "bytes": path.stat().st_size,
        "first_time": first_time,
        "watermark": wm,
        "span_days": round((wm - (first_time or wm)) / 86400, 2),  # backlog included
        "span_days_after_start": round(max(wm - START, 0) / 86400, 2),
        "open_windows": {
            "min": min(open_samples, default=0),
            "mean": round(sum(open_samples) / len(open_samples)) if open_samples else 0,
            "max": max(open_samples, default=0),
        },
        "promises": promises,
        "promises_cut_off": not_issued,
        "observations": obs_written,
        "duplicates": duplicates,
        "late": late,
        "outcomes": dict(sorted(status.items())),
        "violations": dict(sorted(reasons.items())),
        "broken_share_of_closed": round(broken / closed, 4) if closed else None,
        "rejects": dict(
            sorted((junk + Counter(unknown_promise=orphans + unknown_promise)).items())
        ),
        "orphans_inserted": orphans,
        "junk_inserted": sum(junk.values()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    path.with_name(path.name + ".meta.json").write_bytes(
        orjson.dumps(meta, option=orjson.OPT_INDENT_2)
    )
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", metavar="OUT.jsonl")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--open-promises", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.events < 1 or args.open_promises < 1:
        parser.error("--events and --open-promises must be at least 1")
    meta = generate(args.out, args.events, args.open_promises, args.seed)
    rate = args.events / meta["seconds"] if meta["seconds"] else 0
    print(
        f"{args.out}: {args.events:,} events ({meta['bytes'] / 1e6:.0f} MB) "
        f"in {meta['seconds']:.1f} s "
        f"({rate:,.0f}/s), {meta['span_days']} days of event time, {meta['promises']:,} promises, "
        f"open windows {meta['open_windows']}; expected outcomes {meta['outcomes']}, "
        f"violations {meta['violations']}, rejects {meta['rejects']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
