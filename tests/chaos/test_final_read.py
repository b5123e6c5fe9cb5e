"""The checkers judge a still system, read consistently: heal waits out the work timers still
owe (reservations lapsing after the shoppers stopped), and the final read sees each service's
tables as of one moment (work a timed-out client left running may still commit)."""

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


def test_heal_waits_for_the_orders_whose_reservations_lapse_after_the_shoppers_stopped(monkeypatch):
    """A pending order is work still to come: its reservation lapses on a timer and cancels it.
    The checkers must read after that, or a service read early misses events a later one applied."""
    from microcommerce.chaos import runner
    from microcommerce.chaos.runner import RunConfig
    from microcommerce.chaos.simulation import simulate

    seen: dict[str, int] = {}
    heal, final_read = runner.heal, runner.final_read

    async def counting_heal(node, *args):  # noqa: ANN001, ANN202
        seen["when the shoppers stopped"] = await runner.orders_in_flight(node)
        return await heal(node, *args)

    async def counting_read(node, healed):  # noqa: ANN001, ANN202
        seen["at the final read"] = await runner.orders_in_flight(node)
        return await final_read(node, healed)

    monkeypatch.setattr(runner, "heal", counting_heal)
    monkeypatch.setattr(runner, "final_read", counting_read)
    result = simulate(RunConfig(seed=3, duration=6.0, shoppers=6, deterministic=True, think_s=0.03),
                      progress=None)
    assert seen["when the shoppers stopped"] > 0, seen  # the run did leave orders to lapse
    assert seen["at the final read"] == 0 and result.healed and result.valid is True, (seen, result.checkers)
