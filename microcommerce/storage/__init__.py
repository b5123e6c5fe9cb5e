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
from .urls import open_database

__all__ = [
    "Database",
    "DatabaseUnavailable",
    "ExecResult",
    "Executor",
    "IntegrityError",
    "StorageError",
    "TransientError",
    "migrate",
    "open_database",
]
