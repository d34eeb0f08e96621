"""Alertmanager for the tests: one of the test's own, on a free port, started and stopped by
deploy/alertmanager/alertmanager.sh, and the alerts it holds."""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.request
from pathlib import Path

import orjson

from tests.support import ROOT

ALERTMANAGER_SH = ROOT / "deploy" / "alertmanager" / "alertmanager.sh"


class Alertmanager:
    """One Alertmanager of this test's own, on a free port, started and stopped by the script."""

    def __init__(self, data: Path, config: Path | None = None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ALERTMANAGER_PORT": str(self.port),
            "ALERTMANAGER_DATA": str(data),
            **({"ALERTMANAGER_CONFIG": str(config)} if config else {}),
        }

    def start(self) -> None:
        subprocess.run([ALERTMANAGER_SH, "start"], env=self.env, check=True, timeout=60)

    def stop(self) -> None:
        subprocess.run([ALERTMANAGER_SH, "stop"], env=self.env, check=True, timeout=60)

    def alerts(self) -> dict[str, dict]:
        """The alerts it holds as firing (a resolved one is not listed), by violation id."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            alerts = orjson.loads(response.read())
        # violation alerts only: PromiseAtRisk alerts carry a warning_id instead
        return {a["labels"]["violation_id"]: a for a in alerts if "violation_id" in a["labels"]}

    def firing(self, alertname: str) -> dict[str, dict]:
        """The warning alerts of that name it holds as firing, by warning id."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            alerts = orjson.loads(response.read())
        return {
            a["labels"]["warning_id"]: a for a in alerts if a["labels"]["alertname"] == alertname
        }
