"""``promise-tracker migrate``: apply the numbered DDL files of deploy/clickhouse/ once each.

A file ``NNNN_name.sql`` is version NNNN. Applied versions are recorded with a checksum in
``schema_migrations``; running again applies only newer files, and a recorded file whose
text has changed since is an error (add a new file instead of editing an applied one).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from promise_tracker.sinks.store import Store, StoreError, check_identifier

DDL = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self) -> list[str]:
        """The file's statements: comments dropped, split at a ``;`` that ends a line."""
        text = "\n".join(
            line for line in self.sql.splitlines() if not line.strip().startswith("--")
        )
        return [part.strip() for part in re.split(r";\s*$", text, flags=re.M) if part.strip()]


def migrations(directory: Path = DDL) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise StoreError(f"{path}: DDL files are named NNNN_what.sql (e.g. 0002_rollups.sql)")
        found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    if not found:
        raise StoreError(
            f"no DDL files in {directory}: promise-tracker reads deploy/clickhouse/ from its "
            "source tree (install it with pip install -e, as the Dockerfile does)"
        )
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"{directory}: two DDL files share a version number")
    return found


def migrate(store: Store, directory: Path = DDL) -> list[str]:
    """Create the database if needed and apply what is missing; returns the files applied."""
    check_identifier(store.database)
    store.command("CREATE DATABASE IF NOT EXISTS {db}")
    store.command(
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, "
        "checksum String, applied_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY version"
    )
    applied = {
        int(row["version"]): row
        for row in store.rows("SELECT version, name, checksum FROM {db}.schema_migrations")
    }
    done = []
    for migration in migrations(directory):
        record = applied.get(migration.version)
        if record is not None:
            if record["checksum"] != migration.checksum:
                raise StoreError(
                    f"{migration.name} was changed after it was applied to {store.database} "
                    f"(as {record['name']}): put the change in a new, higher-numbered file"
                )
            continue
        for statement in migration.statements():
            store.command(statement)
        store.command(
            "INSERT INTO {db}.schema_migrations (version, name, checksum, applied_at) VALUES "
            "({version:UInt32}, {name:String}, {checksum:String}, {at:Float64})",
            {
                "version": migration.version,
                "name": migration.name,
                "checksum": migration.checksum,
                "at": time.time(),
            },
        )
        done.append(migration.name)
    return done


def schema_version(store: Store) -> int:
    """The highest applied version (0 when nothing is)."""
    rows = store.rows("SELECT max(version) AS v FROM {db}.schema_migrations")
    return int(rows[0]["v"]) if rows else 0
