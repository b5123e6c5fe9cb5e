"""`microcommerce dlq list | redrive`: the dead-letter queue of every service, read and redriven
straight in the services' databases (works whether the platform is running or not).

A redrive only marks letters; the service's outbox relay delivers them on its next poll (or at
its next start), and its inbox applies each event at most once.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

from microcommerce.actors import dlq
from microcommerce.actors.system import MESSAGING_SCHEMA
from microcommerce.config import ConfigError, Settings
from microcommerce.storage import Database, migrate, open_database


def add_dlq_commands(sub: argparse._SubParsersAction, common, storage_flags) -> None:  # noqa: ANN001
    dlq_parser = sub.add_parser("dlq", help="list or redrive dead-lettered events")
    actions = dlq_parser.add_subparsers(dest="dlq_action", required=True, parser_class=type(dlq_parser))

    listing = actions.add_parser("list", help="show parked events and why they failed")
    common(listing)
    storage_flags(listing)
    listing.add_argument("--service", default="all", help="service name(s) or 'all'")
    listing.add_argument("--topic", help="only this topic, e.g. user-events")
    listing.add_argument("--status", choices=dlq.STATUSES, help="only letters in this state")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    redrive = actions.add_parser("redrive", help="send parked events back to their consumer")
    common(redrive)
    storage_flags(redrive)
    redrive.add_argument("--service", default="all", help="service name(s) or 'all'")
    redrive.add_argument("--topic", help="only this topic")
    which = redrive.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, action="append", dest="ids", metavar="N",
                       help="dead letter id (repeatable; needs a single --service)")
    which.add_argument("--all", action="store_true", help="every parked letter")


async def _each_database(settings: Settings, services: list[str]) -> AsyncIterator[tuple[str, Database]]:
    """Each service's database, connected; one never created (nothing parked there) is skipped."""
    for service in services:
        url = settings.database_url_of(service)
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            continue
        db = open_database(url)
        await db.connect()
        try:
            await migrate(db, MESSAGING_SCHEMA, table="messaging_migrations")  # an older database
            yield service, db
        finally:
            await db.close()


async def list_letters(settings: Settings, services: list[str], args: argparse.Namespace) -> int:
    found = 0
    async for service, db in _each_database(settings, services):
        for letter in await dlq.list_letters(db, topic=args.topic, status=args.status, limit=10_000):
            found += 1
            if args.json:
                print(msgspec.json.encode({"service": service, **msgspec.structs.asdict(letter)}).decode())
            else:
                print(f"{service:<13} #{letter.id:<5} {letter.status:<17} {letter.topic:<16} "
                      f"{letter.eventType:<20} {letter.eventId}  attempts={letter.attempts}  "
                      f"parked={letter.parkedAt}\n{'':<20}error: {letter.error}")
    if not args.json:
        print(f"{found} dead letter(s)")
    return found


async def redrive(settings: Settings, services: list[str], args: argparse.Namespace) -> int:
    if args.ids and len(services) != 1:
        raise ConfigError("--id: ids are per service; give a single --service")
    total = 0
    async for service, db in _each_database(settings, services):
        count = await dlq.request_redrive(db, ids=args.ids, topic=args.topic)
        if count:
            print(f"{service}: {count} dead letter(s) marked for redrive")
        total += count
    print(f"{total} dead letter(s) will be redriven by their service (at its next poll, or its next start)"
          if total else "nothing to redrive (already redriven, or no such parked letter)")
    return total


def run(settings: Settings, services: list[str], args: argparse.Namespace) -> None:
    action = list_letters if args.dlq_action == "list" else redrive
    asyncio.run(action(settings, services, args))
