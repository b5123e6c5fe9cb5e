"""User service (port 3001): users, credentials, password-reset OTPs, the bootstrap admin."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from microcommerce import environment
from microcommerce.actors.cpu import run_cpu
from microcommerce.services import ServiceSpec
from microcommerce.services.user import domain
from microcommerce.services.user.actor import UserActor
from microcommerce.services.user.messages import EnsureAdmin
from microcommerce.services.user.routes import setup_routes

if TYPE_CHECKING:
    from microcommerce.node import Node

log = logging.getLogger(__name__)


async def bootstrap_admin(node: Node) -> dict[str, str | bool]:
    """Create the configured admin if missing; without configuration, generate and report one."""
    settings = node.settings
    email = settings.bootstrap_admin_email or "admin@microcommerce.local"
    password = settings.bootstrap_admin_password
    generated = not password
    if generated:
        password = environment.token_urlsafe(12)
    password_hash = await run_cpu(domain.hash_password, password, settings.password_hash_cost)
    command = EnsureAdmin(name=settings.bootstrap_admin_name, email=domain.normalize_email(email),
                          password_hash=password_hash)
    created = await node.system("user").ask(command)
    return {"email": email, "password": password if (created and generated) else "",
            "created": created, "generated": generated}


SPEC = ServiceSpec(
    name="user",
    logic=UserActor,
    setup_routes=setup_routes,
    schema_dir=Path(__file__).parent / "schema",
    on_ready=bootstrap_admin,
)
