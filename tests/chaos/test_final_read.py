"""The harness's final read sees each service's tables as of one moment: work a timed-out
client left running may commit while the checkers' snapshot is taken."""

from __future__ import annotations

import asyncio

from microcommerce.chaos.runner import read_at_one_moment
from microcommerce.storage import open_database


async def test_a_commit_between_two_table_reads_is_seen_whole_or_not_at_all(mysql_db_url):
    db = open_database(mysql_db_url)
    await db.connect()
    await db.execute("CREATE TABLE applied (id INT PRIMARY KEY)")
    await db.execute("CREATE TABLE effects (id INT PRIMARY KEY)")
    stop = asyncio.Event()

    async def apply_events() -> None:
        # Like a consumer: its inbox claim and its effect in one transaction, over and over.
        n = 0
        while not stop.is_set():
            n += 1
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO applied VALUES (?)", n)
                await tx.execute("INSERT INTO effects VALUES (?)", n)

    writer = asyncio.create_task(apply_events())
    try:
        for _ in range(100):
            applied, effects = await read_at_one_moment(
                mysql_db_url, ["SELECT COUNT(*) AS n FROM applied", "SELECT COUNT(*) AS n FROM effects"])
            assert applied[0]["n"] == effects[0]["n"]
    finally:
        stop.set()
        await writer
        await db.close()
