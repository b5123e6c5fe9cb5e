"""Versioned schema migrations: ``NNNN_description.sql`` files, each applied once, in order.

One file serves both dialects: ``{{pk}}``, ``{{text}}`` and ``{{json}}`` are
replaced with the dialect's types, and MySQL tables get InnoDB/utf8mb4 unless
the file chose an engine itself.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from microcommerce import environment

from .mysql import MysqlDatabase
from .port import Database, StorageError

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9_-]+)\.sql$")
_TOKEN = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_TOKENS = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "text": "TEXT", "json": "TEXT"},
    "mysql": {"pk": "BIGINT PRIMARY KEY AUTO_INCREMENT", "text": "TEXT", "json": "LONGTEXT"},
}
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_CREATE_TABLE = re.compile(r"^CREATE\s+TABLE\b", re.IGNORECASE)
_HAS_ENGINE = re.compile(r"\bENGINE\s*=", re.IGNORECASE)
_TABLE_NAME = re.compile(r"^[a-z_]+$")
_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS {table} (
    version INTEGER PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    applied_at VARCHAR(32) NOT NULL
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # file name without ".sql", e.g. "0001_create_users"
    statements: tuple[str, ...]


def render(sql: str, dialect: str) -> list[str]:
    """Turn one migration file into the dialect's statements."""
    tokens = _TOKENS[dialect]

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) not in tokens:
            raise StorageError(f"unknown migration token {match.group(0)}")
        return tokens[match.group(1)]

    text = _TOKEN.sub(substitute, sql)
    # Drop whole-line comments so a ';' in prose never splits a statement.
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    statements = [part.strip() for part in _STATEMENT_END.split(text) if part.strip()]
    if dialect == "mysql":
        statements = [
            s + " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            if _CREATE_TABLE.match(s) and not _HAS_ENGINE.search(s)
            else s
            for s in statements
        ]
    return statements


def load_migrations(schema_dir: Path, dialect: str) -> list[Migration]:
    if not schema_dir.is_dir():
        raise StorageError(f"migration directory {schema_dir} does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(schema_dir.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise StorageError(f"migration file {path.name} is not named NNNN_description.sql")
        version = int(match.group(1))
        if version in found:
            raise StorageError(
                f"migrations {found[version].name} and {path.stem} share version {version}"
            )
        statements = tuple(render(path.read_text(encoding="utf-8"), dialect))
        found[version] = Migration(version, path.stem, statements)
    return [found[v] for v in sorted(found)]


def _exclusive(db: Database) -> contextlib.AbstractAsyncContextManager[None]:
    """Keep concurrent migrators (other workers or processes) from applying twice.

    SQLite needs no lock here: each migration re-checks its version inside a
    BEGIN IMMEDIATE transaction, which already excludes every other writer.
    MySQL DDL commits implicitly, so it needs a server-wide named lock instead.
    """
    if isinstance(db, MysqlDatabase):
        return db.named_lock(f"mc_migrate_{db.database}"[:64], 30)
    return contextlib.nullcontext()


async def migrate(db: Database, schema_dir: Path, *, table: str = "schema_migrations") -> list[str]:
    """Apply pending migrations from ``schema_dir``; return the names of those applied now.

    ``table`` records what was applied; a separate table lets the runtime's own messaging
    tables (outbox, inbox) be versioned independently of a service's schema.
    """
    if not _TABLE_NAME.match(table):
        raise StorageError(f"bad migrations table name {table!r}")
    migrations = load_migrations(Path(schema_dir), db.dialect)
    applied: list[str] = []
    async with _exclusive(db):
        for statement in render(_VERSION_TABLE.format(table=table), db.dialect):
            await db.execute(statement)
        done = {
            row["version"] for row in await db.fetch_all(f"SELECT version FROM {table}")
        }
        for migration in migrations:
            if migration.version in done:
                continue
            try:
                async with db.transaction() as tx:
                    if await tx.fetch_one(
                        f"SELECT version FROM {table} WHERE version = ?", migration.version
                    ):
                        continue  # another worker applied it since we looked
                    for statement in migration.statements:
                        await tx.execute(statement)
                    await tx.execute(
                        f"INSERT INTO {table} (version, name, applied_at) VALUES (?, ?, ?)",
                        migration.version,
                        migration.name,
                        datetime.fromtimestamp(environment.now(), UTC).isoformat(timespec="seconds"),
                    )
            except StorageError as exc:
                raise StorageError(f"migration {migration.name} failed: {exc}") from exc
            applied.append(migration.name)
            log.info("applied migration %s to %s database", migration.name, db.dialect)
    return applied
