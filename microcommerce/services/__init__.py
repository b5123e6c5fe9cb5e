"""The ten services. Each package exposes `SPEC`; none imports another service's package."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from microcommerce.actors.service import ServiceActor
from microcommerce.config import SERVICE_NAMES

if TYPE_CHECKING:
    from microcommerce.node import Node


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    setup_routes: Callable[[web.Application], None]
    logic: type[ServiceActor] | None = None
    schema_dir: Path | None = None
    # Runs once the whole node is up (e.g. the user service creates the bootstrap admin).
    on_ready: Callable[[Node], Awaitable[Any]] | None = None
    workers: int | None = None


def load_spec(name: str) -> ServiceSpec:
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")
    return importlib.import_module(f"microcommerce.services.{name}").SPEC


def implemented_services() -> list[str]:
    """Services whose package exists, in port order (lets the platform grow service by service)."""
    found = []
    for name in SERVICE_NAMES:
        if importlib.util.find_spec(f"microcommerce.services.{name}") is not None:
            found.append(name)
    return found
