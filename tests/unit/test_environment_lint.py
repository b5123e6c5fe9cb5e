"""Code that runs in the simulation takes time, randomness and ids from `microcommerce.environment`.

A direct `time.time()`, `random.random()`, `uuid.uuid4()`, ... would read the wall clock or the OS
inside the deterministic runner and make a seeded run unrepeatable. The linter resolves imports
(`import time as t`, `from datetime import datetime`, `from secrets import token_hex`) and
reports every use of such a function, called or passed on (`clock=time.monotonic`), by file:line.
Type annotations (`rng: random.Random`) are not uses.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Folders (relative to the repository root) whose every module must go through the environment.
SCANNED_PACKAGES: tuple[str, ...] = (
    "microcommerce/services",
    "microcommerce/http",
    "microcommerce/contracts",
    "microcommerce/storage",
    "microcommerce/actors",
)
#: Modules under SCANNED_PACKAGES allowed to read the OS directly: the runners themselves (the
#: threaded one is wall time by definition; the simulated one owns the seeded scheduler).
EXEMPT_MODULES: frozenset[str] = frozenset({
    "microcommerce/actors/threaded.py",
    "microcommerce/actors/timers.py",
    "microcommerce/actors/simulated.py",
})

#: Qualified names that read the wall clock or the OS's randomness. A module name alone
#: (`random`, `secrets`) forbids everything in it.
FORBIDDEN: frozenset[str] = frozenset({
    "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns",
    "time.perf_counter", "time.perf_counter_ns", "time.sleep",
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today",
    "uuid.uuid1", "uuid.uuid4",
    "random", "secrets",
    "bcrypt.gensalt",
    "os.urandom", "os.getrandom",
})


def _forbidden(qualified: str) -> bool:
    parts = qualified.split(".")
    return any(".".join(parts[:i]) in FORBIDDEN for i in range(1, len(parts) + 1)) and len(parts) > 1


def _imported_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it refers to: `t` -> `time`, `datetime` -> `datetime.datetime`."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    names[head] = head
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything but a chain of attributes on a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _annotations(tree: ast.AST) -> set[int]:
    """ids of the nodes inside type annotations (not uses)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        roots: list[ast.expr | None] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            roots.append(node.returns)
        elif isinstance(node, (ast.arg, ast.AnnAssign)):
            roots.append(node.annotation)
        for root in roots:
            if root is not None:
                inside.update(id(n) for n in ast.walk(root))
    return inside


def forbidden_uses(source: str, filename: str) -> list[str]:
    """`filename:line: qualified.name` for every use of a forbidden function in `source`."""
    tree = ast.parse(source, filename)
    imported = _imported_names(tree)
    annotations = _annotations(tree)
    found: list[tuple[int, str]] = []
    seen: set[int] = set()  # the outermost chain reports; its inner attributes are the same use
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Attribute, ast.Name)) or id(node) in seen or id(node) in annotations:
            continue
        parts = _dotted(node)
        if parts is None:
            continue
        seen.update(id(n) for n in ast.walk(node))
        head = imported.get(parts[0])
        if head is None:
            continue
        qualified = ".".join([head, *parts[1:]])
        if _forbidden(qualified):
            found.append((node.lineno, qualified))
    return [f"{filename}:{line}: {qualified}" for line, qualified in sorted(found)]


def scanned_modules() -> list[Path]:
    modules = [path for package in SCANNED_PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    return [path for path in modules if path.relative_to(ROOT).as_posix() not in EXEMPT_MODULES]


def test_services_http_contracts_storage_and_actors_take_time_and_randomness_from_the_environment():
    modules = scanned_modules()
    assert len(modules) > 50  # the packages were found
    found = [use for path in modules
             for use in forbidden_uses(path.read_text(), path.relative_to(ROOT).as_posix())]
    assert not found, "use microcommerce.environment instead:\n" + "\n".join(found)


@pytest.mark.parametrize(("source", "qualified"), [
    ("import time\n\nstarted = time.time()\n", "time.time"),
    ("import time as t\n\nt.monotonic()\n", "time.monotonic"),
    ("from time import sleep\n\nsleep(1)\n", "time.sleep"),
    ("from time import perf_counter as clock\n\nclock()\n", "time.perf_counter"),
    ("from datetime import UTC, datetime\n\ndatetime.now(UTC)\n", "datetime.datetime.now"),
    ("import datetime\n\ndatetime.datetime.utcnow()\n", "datetime.datetime.utcnow"),
    ("import datetime as dt\n\ndt.datetime.now()\n", "datetime.datetime.now"),
    ("import uuid\n\nstr(uuid.uuid4())\n", "uuid.uuid4"),
    ("import random\n\nrandom.uniform(0, 1)\n", "random.uniform"),
    ("from random import choice\n\nchoice([1, 2])\n", "random.choice"),
    ("import secrets\n\nsecrets.token_hex(8)\n", "secrets.token_hex"),
    ("from secrets import randbelow\n\nrandbelow(10)\n", "secrets.randbelow"),
    ("import bcrypt\n\nbcrypt.gensalt(rounds=4)\n", "bcrypt.gensalt"),
    ("from os import urandom\n\nurandom(16)\n", "os.urandom"),
    ("import os\n\nos.urandom(16)\n", "os.urandom"),
    ("import time\n\ndef f(clock=time.monotonic):\n    return clock\n", "time.monotonic"),
])
def test_the_linter_catches_a_planted_call(source, qualified):
    assert forbidden_uses(source, "planted.py") == [f"planted.py:3: {qualified}"]  # each on line 3


def test_the_linter_lets_the_environment_and_harmless_uses_pass():
    source = (
        "import asyncio\nimport random\nimport time\nfrom datetime import UTC, datetime\n"
        "from microcommerce import environment\n\n"
        "async def f(rng: random.Random) -> float:\n"
        "    await asyncio.sleep(0.1)\n"
        "    datetime.fromisoformat('2026-01-01T00:00:00').timestamp()\n"
        "    datetime.fromtimestamp(0, UTC)\n"
        "    environment.rng().random()\n"
        "    return environment.now()\n"
    )
    assert forbidden_uses(source, "clean.py") == []
