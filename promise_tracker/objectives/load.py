"""Reads the objectives file: OpenSLO v1 ``SLO`` documents in one YAML file (docs/objectives.md).

``check_objectives`` returns every problem, one line each ("FILE: document N (name) field:
problem; fix"); ``load_objectives`` returns the objectives or raises ``ObjectivesError`` with
all of them. A YAML key given twice in one mapping is a problem too (YAML would keep the last).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from promise_tracker.errors import ObjectivesError
from promise_tracker.objectives.model import Objective
from promise_tracker.objectives.openslo import Document, objective


def load_objectives(path: str | Path) -> list[Objective]:
    """The objectives of the file at ``path``, in file order; ``ObjectivesError`` listing every
    problem if there is any."""
    objectives, problems = _read(path)
    if problems:
        raise ObjectivesError(problems)
    return objectives


def check_objectives(path: str | Path) -> list[str]:
    """Every problem of the file at ``path``; [] when it can be used."""
    return _read(path)[1]


def _read(path: str | Path) -> tuple[list[Objective], list[str]]:
    where = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as error:
        reason = error.strerror or str(error)
        return [], [f"{where}: cannot be read ({reason}); give the path of an objectives file"]
    except UnicodeDecodeError:
        return [], [f"{where}: is not UTF-8 text; save it as UTF-8 YAML"]
    try:
        nodes = [n for n in yaml.load_all(text, Loader=_UniqueKeys) if n is not None]
    except yaml.YAMLError as error:
        return [], [f"{where}: does not parse as YAML ({_one_line(error)}); fix the syntax there"]
    if not nodes:
        return [], [
            f"{where}: holds no SLO documents; write one per objective (docs/objectives.md)"
        ]
    objectives: list[Objective] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, node in enumerate(nodes, start=1):
        doc = Document(where, number)
        found = objective(doc, node)
        if doc.name in seen:
            doc.fail(
                "metadata.name",
                f"document {seen[doc.name]} has this name too; names "
                "must be unique (the alert rules and panels are named after them)",
            )
        elif doc.name != "?":
            seen[doc.name] = number
        problems += doc.problems
        if found is not None and not doc.problems:
            objectives.append(found)
    return objectives, problems


class _UniqueKeys(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            keys.add(key)
        return super().construct_mapping(node, deep)


def _one_line(error: yaml.YAMLError) -> str:
    """Where and what, without PyYAML's excerpt of the text."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is None or problem is None:
        return " ".join(str(error).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
