"""Every ClickHouse statement binds its values ({name:Type} parameters): a statement is
never built from values with f-strings, ``.format`` or ``%``. The only things put into SQL
text are identifiers that ``check_identifier`` has checked, and the exceptions listed here.
(dashboards/ is Grafana's SQL, with its variables hex-quoted: not scanned.)"""

from __future__ import annotations

import ast
import re

from tests.support import ROOT

SCANNED = ("promise_tracker", "bench")
NOT_SCANNED = "promise_tracker/dashboards/"
SQL = re.compile(r"\b(SELECT|INSERT|CREATE|ALTER|DELETE|DROP|OPTIMIZE|TRUNCATE|FROM|WHERE)\b")
# (file, function) -> names it may interpolate into SQL, and why that is safe
EXCEPTIONS: dict[tuple[str, str], set[str]] = {
    # the chdb API's store, the benchmark's baseline: cols are each check_identifier'd;
    # SETTINGS_TEXT: a constant of that module, made from the store's INSERT_SETTINGS
    ("bench/store.py", "insert"): {"cols", "SETTINGS_TEXT"},
    # name: check_identifier(table, "table") just above
    ("promise_tracker/sinks/readback.py", "counts"): {"name"},
    # constants of promise_tracker/measures.py: SQL expressions, no values
    ("promise_tracker/sinks/readback.py", "keep_rate"): {"KEPT", "BROKEN", "KEEP_RATE"},
    # Grafana alert rules cannot bind values: every value of the objectives file is written
    # by literal() as unhex('...') (tests/unit/test_burn_rules.py feeds it a hostile name)
    ("promise_tracker/objectives/sql.py", "selects"): {"having"},
    # constants of promise_tracker/measures.py, at module level: SQL expressions, no values
    # and of promise_tracker/dashboards/queries.py (Grafana's SQL: conditions without values,
    # the filters Grafana's variables fill); FORESEEN_SHOWN: a constant int of the module
    ("promise_tracker/report/figures.py", ""): {
        "KEPT",
        "BROKEN",
        "KEEP_RATE",
        "ACTIVE",
        "FILTERS",
        "FORESEEN",
        "FORESEEN_SHOWN",
    },
    # conditions of the objectives file, each value written by objectives.sql.literal()
    ("bench/objective_filter.py", "sub_query"): {"having"},
}


def _functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Each node -> the name of the function it is in."""
    owner: dict[ast.AST, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                owner[inner] = node.name  # the innermost wins: ast.walk is breadth-first
    return owner


def _text(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) for v in node.values)
    return ""


def _allowed(value: ast.FormattedValue, names: set[str]) -> bool:
    expr = value.value
    if isinstance(expr, ast.Call) and getattr(expr.func, "id", None) == "check_identifier":
        return True
    return isinstance(expr, ast.Name) and expr.id in names


def offences() -> list[str]:
    found = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name.startswith(NOT_SCANNED):
                continue
            tree = ast.parse(path.read_text(), name)
            owner = _functions(tree)
            for node in ast.walk(tree):
                where = f"{name}:{getattr(node, 'lineno', '?')}"
                if isinstance(node, ast.JoinedStr) and SQL.search(_text(node)):
                    names = EXCEPTIONS.get((name, owner.get(node, "")), set())
                    for value in node.values:
                        if isinstance(value, ast.FormattedValue) and not _allowed(value, names):
                            found.append(f"{where}: f-string SQL interpolates {ast.unparse(value)}")
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "format"
                    and SQL.search(_text(node.func.value))
                ):
                    found.append(f"{where}: SQL built with .format()")
                elif (
                    isinstance(node, ast.BinOp)
                    and isinstance(node.op, ast.Mod)
                    and SQL.search(_text(node.left))
                ):
                    found.append(f"{where}: SQL built with %")
    return found


def test_statements_bind_their_values():
    assert offences() == []


def test_the_exceptions_are_checked_identifiers():
    """The names the exceptions interpolate went through check_identifier first; the store's
    INSERT is written by the client, from names checked the same way."""
    source = (ROOT / "promise_tracker" / "sinks" / "store.py").read_text()
    assert source.count('check_identifier(table, "table")') == 1  # insert()
    assert source.count('check_identifier(c, "column") for c in columns') == 1
    assert (
        'name = check_identifier(table, "table")'
        in (ROOT / "promise_tracker" / "sinks" / "readback.py").read_text()
    )


def test_the_scan_catches_a_value_in_an_f_string():
    """The scan itself works: a value formatted into SQL is found."""
    tree = ast.parse('def f(store, pid):\n    store.rows(f"SELECT * FROM t WHERE id = {pid}")\n')
    strings = [n for n in ast.walk(tree) if isinstance(n, ast.JoinedStr)]
    [value] = [v for v in strings[0].values if isinstance(v, ast.FormattedValue)]
    assert SQL.search(_text(strings[0])) and not _allowed(value, set())
