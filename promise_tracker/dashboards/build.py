"""Writes the dashboards and alert rules as committed files (``promise-tracker dashboards``),
or reports which committed file no longer matches the code (``--check``, and a test)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from promise_tracker.dashboards import alert_rules, leadership, oncall
from promise_tracker.dashboards.grafana import to_json

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = Path("deploy") / "grafana"


def _rules() -> str:
    return json.dumps(alert_rules.provisioning(), sort_keys=True, indent=2) + "\n"


# committed path (from the repository root) -> the code that writes it
FILES: dict[Path, Callable[[], str]] = {
    GRAFANA / "dashboards" / "leadership.json": lambda: to_json(leadership.dashboard()),
    GRAFANA / "dashboards" / "oncall.json": lambda: to_json(oncall.dashboard()),
    GRAFANA / "provisioning" / "alerting" / "promise-tracker.json": _rules,
}


def render() -> dict[Path, str]:
    return {path: write() for path, write in FILES.items()}


def write(root: Path = ROOT) -> list[Path]:
    """Write every file; the ones that changed."""
    changed = []
    for path, text in render().items():
        target = root / path
        if not target.exists() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            changed.append(path)
    return changed


def drifted(root: Path = ROOT) -> list[Path]:
    """Committed files that differ from what the code writes now."""
    return [
        path
        for path, text in render().items()
        if not (root / path).exists() or (root / path).read_text() != text
    ]
