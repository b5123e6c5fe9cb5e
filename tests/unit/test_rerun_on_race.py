"""A handler that opts out of whole reruns still reruns each transaction that lost a race."""

import pytest

from microcommerce.actors.service import ServiceActor
from microcommerce.storage import TransientError


def actor() -> ServiceActor:
    return object.__new__(ServiceActor)  # the helper needs no context


async def test_a_transaction_that_lost_a_race_runs_again_until_it_commits():
    tries = []

    async def unit():
        tries.append(1)
        if len(tries) < 3:
            raise TransientError("Deadlock found when trying to get lock")
        return "committed"

    assert await actor().rerun_on_race(unit) == "committed"
    assert len(tries) == 3


async def test_it_gives_up_after_the_attempts_and_other_errors_are_not_rerun():
    async def deadlock():
        raise TransientError("deadlock")

    with pytest.raises(TransientError):
        await actor().rerun_on_race(deadlock, attempts=2)
    tries = []

    async def bug():
        tries.append(1)
        raise ValueError("not a race")

    with pytest.raises(ValueError):
        await actor().rerun_on_race(bug)
    assert len(tries) == 1
