"""`microcommerce create-admin`: write the admin straight into the user database.

The USER_CREATED/UPDATED event goes into the outbox in the same transaction, so the other
services learn about the admin when the user service next starts and its relay publishes.
"""

from __future__ import annotations

from microcommerce.actors import outbox
from microcommerce.actors.cpu import run_cpu
from microcommerce.actors.system import MESSAGING_SCHEMA
from microcommerce.config import Settings
from microcommerce.contracts import user as events
from microcommerce.services.user import SPEC, domain, store
from microcommerce.services.user.actor import ensure_admin
from microcommerce.storage import migrate, open_database


async def create_admin(settings: Settings, email: str, password: str, name: str) -> bool:
    if len(password) < 8:
        raise ValueError("--password: must be at least 8 characters")
    email = domain.normalize_email(email)
    password_hash = await run_cpu(domain.hash_password, password, settings.password_hash_cost)
    db = open_database(settings.database_url_of("user"))
    await db.connect()
    try:
        await migrate(db, MESSAGING_SCHEMA, table="messaging_migrations")
        await migrate(db, SPEC.schema_dir)
        async with db.transaction() as tx:
            created, row = await ensure_admin(tx, name, email, password_hash)
            if row is not None:
                name_ = events.USER_CREATED if created else events.USER_UPDATED
                await outbox.append(tx, "user-service", name_, row["id"], store.to_event(row))
        return created
    finally:
        await db.close()
