"""Delays between retries of something that is down (the store, Alertmanager)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays between retries: doubling from ``first`` up to ``cap``, with jitter so that
    several sinks do not retry in step."""

    first: float = 0.5
    cap: float = 30.0
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        delay = min(self.cap, self.first * 2**self.attempts)
        self.attempts += 1
        return delay * (0.5 + self.rng.random() / 2)

    def reset(self) -> None:
        self.attempts = 0
