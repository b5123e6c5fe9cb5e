"""Case-insensitive substring search that runs the same on SQLite and MariaDB."""

from __future__ import annotations

from collections.abc import Sequence

LIKE_ESCAPE = "!"


def contains_pattern(text: str) -> str:
    """A lower-cased LIKE pattern matching `text` anywhere, its `%` and `_` taken literally."""
    escaped = "".join(LIKE_ESCAPE + ch if ch in "%_" + LIKE_ESCAPE else ch for ch in text.lower())
    return f"%{escaped}%"


def contains_any(columns: Sequence[str], text: str) -> tuple[str, list[str]]:
    """A WHERE clause (and its parameters) true when any column contains `text`, any case."""
    clause = " OR ".join(f"LOWER({column}) LIKE ? ESCAPE '{LIKE_ESCAPE}'" for column in columns)
    return f"({clause})", [contains_pattern(text)] * len(columns)
