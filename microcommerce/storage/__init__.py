"""Storage layer: one SQL port (``?`` placeholders, dict rows) over SQLite and MySQL/MariaDB."""

from .migrations import migrate
from .port import (
    Database,
    DatabaseUnavailable,
    ExecResult,
    Executor,
    IntegrityError,
    StorageError,
    TransientError,
)
from .urls import drop_database, open_database

__all__ = [
    "Database",
    "DatabaseUnavailable",
    "ExecResult",
    "Executor",
    "IntegrityError",
    "StorageError",
    "TransientError",
    "drop_database",
    "migrate",
    "open_database",
]
