"""Metrics for the tests: scrape a /metrics endpoint into numbers, and run the real
Prometheus (deploy/prometheus/prometheus.sh) to ask it PromQL, as a dashboard panel would."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support import ROOT

PROMETHEUS_SH = ROOT / "deploy" / "prometheus" / "prometheus.sh"
Labels = frozenset[tuple[str, str]]


def installed() -> bool:
    return shutil.which("prometheus") is not None


def free_port() -> int:
    """A port nothing listens on right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Samples:
    """One scrape: sample name (``..._total``, ``..._bucket``) -> labels -> value."""

    def __init__(self, text: str):
        self.series: dict[str, dict[Labels, float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = frozenset(sample.labels.items())
                self.series.setdefault(sample.name, {})[labels] = sample.value

    def get(self, name: str, **labels: str) -> float | None:
        """The value of the series with exactly these labels; None when absent."""
        return self.series.get(name, {}).get(frozenset(labels.items()))

    def by(self, name: str, label: str) -> dict[str, float]:
        """label value -> value, for a series with one label."""
        return {dict(k)[label]: v for k, v in self.series.get(name, {}).items()}


def nonzero(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if v}


def scrape(url: str, timeout: float = 5.0) -> Samples:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return Samples(response.read().decode())


def config(jobs: Mapping[str, list[str]], interval: str = "1s") -> str:
    """A Prometheus configuration scraping each job's host:port targets."""
    scrapes = [
        {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()
    ]
    document = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": scrapes,
    }
    return json.dumps(document, indent=2)  # JSON is YAML


class Prometheus:
    """The real Prometheus, started with deploy/prometheus/prometheus.sh on a free port."""

    def __init__(self, data: Path, config_text: str, port: int | None = None):
        self.port = port or free_port()
        self.data = data
        self.config = data / "prometheus.yml"
        data.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config_text)
        self.env = {
            **os.environ,
            "PROMETHEUS_PORT": str(self.port),
            "PROMETHEUS_DATA": str(data),
            "PROMETHEUS_CONFIG": str(self.config),
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        subprocess.run([PROMETHEUS_SH, "start"], env=self.env, check=True, timeout=90)
        return self

    def stop(self) -> None:
        subprocess.run([PROMETHEUS_SH, "stop"], env=self.env, check=True, timeout=60)

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector (``metric`` labels, ``value`` [time, "text"])."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def values(self, expr: str, label: str | None = None) -> dict[str, float]:
        """An instant query as label value (or "" without ``label``) -> value."""
        return {
            (item["metric"].get(label, "") if label else ""): float(item["value"][1])
            for item in self.query(expr)
        }

    def wait_for(
        self, expr: str, expected: Callable[[dict[str, float]], bool], label: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, float]:  # fmt: skip
        """Query until ``expected(values)`` holds; the last values either way."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.values(expr, label)
            if expected(got) or time.monotonic() > deadline:
                return got
            time.sleep(0.5)

    def targets_up(self) -> dict[str, float]:
        """job -> up (1 when its last scrape succeeded)."""
        return self.values("up", "job")
