"""Writes the dashboards and alert rules as committed files (``promise-tracker dashboards``),
or reports which committed file no longer matches the code (``--check``, and a test).

The alert rules follow the objectives file (docs/objectives.md): by default the repository's
``examples/objectives.yaml``, the file the committed rules were written from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from promise_tracker.dashboards import alert_rules, leadership, oncall
from promise_tracker.dashboards.grafana import to_json
from promise_tracker.objectives.load import load_objectives
from promise_tracker.objectives.model import Objective

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = Path("deploy") / "grafana"
OBJECTIVES = ROOT / "examples" / "objectives.yaml"


def _rules(objectives: Sequence[Objective]) -> str:
    return json.dumps(alert_rules.provisioning(objectives), sort_keys=True, indent=2) + "\n"


# committed path (from the repository root) -> the code that writes it, from the objectives
FILES: dict[Path, Callable[[Sequence[Objective]], str]] = {
    GRAFANA / "dashboards" / "leadership.json": lambda objectives: to_json(
        leadership.dashboard(objectives)
    ),
    GRAFANA / "dashboards" / "oncall.json": lambda _: to_json(oncall.dashboard()),
    GRAFANA / "provisioning" / "alerting" / "promise-tracker.json": _rules,
}


def render(objectives: Sequence[Objective] | None = None) -> dict[Path, str]:
    """Every file's text; the objectives of ``OBJECTIVES`` unless given."""
    chosen = load_objectives(OBJECTIVES) if objectives is None else objectives
    return {path: write(chosen) for path, write in FILES.items()}


def write(root: Path = ROOT, objectives: Sequence[Objective] | None = None) -> list[Path]:
    """Write every file; the ones that changed."""
    changed = []
    for path, text in render(objectives).items():
        target = root / path
        if not target.exists() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            changed.append(path)
    return changed


def drifted(root: Path = ROOT, objectives: Sequence[Objective] | None = None) -> list[Path]:
    """Committed files that differ from what the code writes now."""
    return [
        path
        for path, text in render(objectives).items()
        if not (root / path).exists() or (root / path).read_text() != text
    ]
