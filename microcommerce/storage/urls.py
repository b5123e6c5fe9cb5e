"""Database URLs: parsing (strict, with clear errors) and ``open_database``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .port import Database

SCHEMES = ("sqlite", "mysql")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")  # safe to quote into DDL and lock names


@dataclass(frozen=True)
class SqliteTarget:
    """``path`` is None for an in-memory database; ``key`` identifies the shared connection."""

    path: Path | None
    key: str


@dataclass(frozen=True)
class MysqlTarget:
    host: str
    port: int
    user: str
    database: str
    pool_size: int
    password: str = field(default="", repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _bad(url: str, reason: str) -> ValueError:
    # Never echo a password back: show only the scheme and what follows the '@'.
    shown = re.sub(r"//[^@/]*@", "//***@", url)
    return ValueError(f"bad database URL {shown!r}: {reason}")


def parse_database_url(url: str, *, pool_size: int = 2) -> SqliteTarget | MysqlTarget:
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise _bad(url, f"scheme must be one of {', '.join(s + '://' for s in SCHEMES)}")
    if scheme == "sqlite":
        return _parse_sqlite(url)
    return _parse_mysql(url, pool_size)


def _parse_sqlite(url: str) -> SqliteTarget:
    if url.startswith("sqlite://memory/"):
        name = url.removeprefix("sqlite://memory/")
        if not name or "/" in name or "?" in name:
            raise _bad(url, "expected sqlite://memory/<name>")
        return SqliteTarget(None, f"memory:{name}")
    if not url.startswith("sqlite:///"):
        raise _bad(url, "expected sqlite:///<path>, sqlite:///:memory: or sqlite://memory/<name>")
    raw = url.removeprefix("sqlite:///")
    if not raw:
        raise _bad(url, "missing file path")
    if "?" in raw:
        raise _bad(url, "sqlite URLs take no query parameters")
    if raw == ":memory:":
        return SqliteTarget(None, "memory:")
    path = Path(raw).resolve()  # one key per file, however it was spelled
    return SqliteTarget(path, f"file:{path}")


def _parse_mysql(url: str, pool_size: int) -> MysqlTarget:
    parts = urlsplit(url)
    try:
        port = parts.port if parts.port is not None else 3306
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise _bad(url, "port must be a number from 1 to 65535")
    if not parts.hostname:
        raise _bad(url, "missing host")
    if not parts.username:
        raise _bad(url, "missing user")
    database = parts.path.removeprefix("/")
    if not database:
        raise _bad(url, "missing database name (mysql://user:password@host:port/dbname)")
    if not _IDENTIFIER.match(database):
        raise _bad(url, "database name may only contain letters, digits and '_'")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = set(query) - {"pool_size"}
    if unknown:
        raise _bad(
            url, f"unknown parameter(s) {', '.join(sorted(unknown))}; only pool_size is accepted"
        )
    if "pool_size" in query:
        value = query["pool_size"][-1]
        if not value.isdigit() or int(value) < 1:
            raise _bad(url, "pool_size must be a positive integer")
        pool_size = int(value)
    return MysqlTarget(
        host=parts.hostname,
        port=port,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        database=database,
        pool_size=pool_size,
    )


def open_database(url: str, *, pool_size: int = 2) -> Database:
    """Build (but do not connect) the adapter for ``url``."""
    target = parse_database_url(url, pool_size=pool_size)
    # Imported here: the adapters import this module for their target types.
    if isinstance(target, SqliteTarget):
        from .sqlite import SqliteDatabase

        return SqliteDatabase(url, target)
    from .mysql import MysqlDatabase

    return MysqlDatabase(url, target)


async def drop_database(url: str) -> None:
    """Drop the MySQL database ``url`` names; an in-memory SQLite one goes with its process."""
    target = parse_database_url(url)
    if isinstance(target, SqliteTarget):
        return
    from .mysql import MysqlDatabase

    await MysqlDatabase(url, target).drop()
