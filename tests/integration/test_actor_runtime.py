"""The actor runtime under a real aiohttp front end: crashes, restarts, escalation, back-pressure.

A small test service (`ProbeActor`) runs through the same ActorSystem and `create_app` as the
real services and is served on a real port.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import msgspec
import pytest
from aiohttp import web
from mc_testkit import eventually, free_ports

from microcommerce.actors.bus import LocalBus
from microcommerce.actors.service import ServiceActor, handles
from microcommerce.actors.supervisor import RestartPolicy
from microcommerce.actors.system import ActorSystem
from microcommerce.actors.timers import Timers
from microcommerce.config import load_settings
from microcommerce.contracts.commands import Command
from microcommerce.errors import InternalError, NotFound, ServiceUnavailable, UpstreamTimeout
from microcommerce.http.app import ask, create_app
from microcommerce.http.auth import Revocations, TokenIssuer
from microcommerce.http.body import int_param, json_response, read_json
from microcommerce.storage import TransientError

WAIT_S = 5.0


# -- the probe service ------------------------------------------------------------------------


@dataclass
class ProbeState:
    """What the probe workers report back to the test (they run on their own threads)."""

    boots: Counter = field(default_factory=Counter)
    ticks: Counter = field(default_factory=Counter)
    timers: dict[int, Timers] = field(default_factory=dict)
    gate: threading.Event = field(default_factory=threading.Event)
    blocked: threading.Event = field(default_factory=threading.Event)
    tick_interval_s: float | None = None
    attempts: Counter = field(default_factory=Counter)


STATE = ProbeState()


class Echo(Command, frozen=True):
    key_field = "key"
    key: int
    text: str = "hello"


class Crash(Command, frozen=True):
    key_field = "key"
    key: int


class Block(Command, frozen=True):
    """Holds its worker until the test opens the gate."""

    key_field = "key"
    key: int


class Missing(Command, frozen=True):
    key_field = "key"
    key: int


class Tick(Command, frozen=True):
    pass


class LoseRace(Command, frozen=True):
    """Fails with a deadlock `fails` times, then succeeds."""

    key_field = "key"
    key: int
    fails: int


class LoseRaceOnce(LoseRace, frozen=True):
    retry_transient = False  # as a card charge: never run twice


class Unhandled(Command, frozen=True):
    pass


class ProbeActor(ServiceActor):
    async def on_start(self) -> None:
        STATE.boots[self.ctx.worker_index] += 1
        STATE.timers[self.ctx.worker_index] = self.timers
        if STATE.tick_interval_s is not None and self.ctx.worker_index == 0:
            self.timers.start_periodic("tick", STATE.tick_interval_s, Tick())

    @handles(Echo)
    async def echo(self, cmd: Echo) -> dict:
        return {"text": cmd.text, "worker": self.ctx.worker_index}

    @handles(Crash)
    async def crash(self, cmd: Crash) -> None:
        raise RuntimeError("handler bug: secret detail that must not leak")

    @handles(Missing)
    async def missing(self, cmd: Missing) -> None:
        raise NotFound(f"Thing {cmd.key} not found")

    @handles(Block)
    async def block(self, cmd: Block) -> dict:
        STATE.blocked.set()
        # Blocking on purpose: the worker's mailbox is held, as by a slow handler.
        await asyncio.to_thread(STATE.gate.wait, WAIT_S * 2)
        return {"released": True, "worker": self.ctx.worker_index}

    @handles(Tick)
    async def tick(self, cmd: Tick) -> None:
        STATE.ticks[self.ctx.worker_index] += 1

    @handles(LoseRace)
    @handles(LoseRaceOnce)
    async def lose_race(self, cmd: LoseRace) -> dict:
        STATE.attempts[cmd.key] += 1
        if STATE.attempts[cmd.key] <= cmd.fails:
            raise TransientError("transaction lost a race: Deadlock found")
        return {"attempts": STATE.attempts[cmd.key]}


class EchoBody(msgspec.Struct):
    key: int
    text: str


async def echo_body_route(request: web.Request) -> web.Response:
    body = await read_json(request, EchoBody)
    return json_response(await ask(request, Echo(key=body.key, text=body.text)))


async def echo_route(request: web.Request) -> web.Response:
    return json_response(await ask(request, Echo(key=int_param(request.match_info["key"], "key"))))


async def crash_route(request: web.Request) -> web.Response:
    return json_response(await ask(request, Crash(key=int_param(request.match_info["key"], "key"))))


async def block_route(request: web.Request) -> web.Response:
    return json_response(await ask(request, Block(key=int_param(request.match_info["key"], "key"))))


async def missing_route(request: web.Request) -> web.Response:
    return json_response(await ask(request, Missing(key=int_param(request.match_info["key"], "key"))))


def probe_routes(app: web.Application) -> None:
    app.router.add_get("/echo/{key}", echo_route)
    app.router.add_post("/echo", echo_body_route)
    app.router.add_post("/crash/{key}", crash_route)
    app.router.add_post("/block/{key}", block_route)
    app.router.add_get("/missing/{key}", missing_route)


# -- fixtures ---------------------------------------------------------------------------------


@dataclass
class Probe:
    system: ActorSystem
    session: aiohttp.ClientSession
    base_url: str

    async def call(self, method: str, path: str, json: object = None) -> tuple[int, dict, dict]:
        async with self.session.request(method, self.base_url + path, json=json) as resp:
            return resp.status, await resp.json(content_type=None), dict(resp.headers)


@pytest.fixture
async def start_probe():
    """`await start_probe(workers=1, mailbox_size=1, policy=...)` → a served, running probe system."""
    global STATE
    STATE = ProbeState()
    started: list[tuple[ActorSystem, web.AppRunner, aiohttp.ClientSession]] = []

    async def start(*, policy: RestartPolicy | None = None, tick_interval_s: float | None = None,
                    **overrides) -> Probe:
        STATE.tick_interval_s = tick_interval_s
        flags = {"ephemeral": True, "workers": 2, "access_log": False, "outbox_poll_ms": 200, **overrides}
        settings = load_settings(flags, env={})
        system = ActorSystem("probe", settings, LocalBus(), ProbeActor, schema_dir=None, policy=policy)
        await system.migrate()
        await system.start()
        # Each worker boots on its own thread: the tests read what its start left in STATE.
        workers = settings.workers
        assert await eventually(lambda: _async(all(STATE.boots[i] for i in range(workers))))
        issuer = TokenIssuer(settings.jwt_secret, settings.jwt_ttl_s, Revocations())
        app = create_app("probe", settings, issuer, system=system, setup_routes=probe_routes)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_ports(1)[0]
        await web.TCPSite(runner, "127.0.0.1", port).start()
        session = aiohttp.ClientSession()
        started.append((system, runner, session))
        return Probe(system, session, f"http://127.0.0.1:{port}")

    yield start
    STATE.gate.set()  # never leave a worker blocked
    for system, runner, session in started:
        await session.close()
        await runner.cleanup()
        await system.stop()


def key_of_worker(system: ActorSystem, index: int) -> int:
    """A key that the system's router sends to worker `index`."""
    target = system.router.routees[index]
    return next(key for key in range(1, 1000) if system.router.route(key) is target)


# -- crash and restart --------------------------------------------------------------------------


async def test_crashing_handler_answers_500_and_the_worker_is_restarted(start_probe):
    probe = await start_probe(workers=1)
    assert STATE.boots[0] == 1

    status, body, _ = await probe.call("POST", "/crash/1")
    assert status == 500
    assert body == {"message": "Internal server error"}  # no detail of the crash leaks

    status, body, _ = await probe.call("GET", "/echo/1")  # queued behind the restart
    assert status == 200 and body["text"] == "hello"
    assert STATE.boots[0] == 2  # a fresh ServiceActor instance after the crash
    assert probe.system.restarts_total() == 1
    assert probe.system.escalation is None
    status, body, _ = await probe.call("GET", "/health")
    assert status == 200 and body["status"] == "up"


async def test_crash_reaches_a_direct_caller_as_internal_error(start_probe):
    probe = await start_probe(workers=1)
    with pytest.raises(InternalError, match="Internal server error"):
        await probe.system.ask(Crash(key=3))
    assert (await probe.system.ask(Echo(key=3, text="again")))["text"] == "again"
    assert probe.system.restarts_total() == 1


async def test_business_errors_are_answers_not_crashes(start_probe):
    probe = await start_probe(workers=1)
    status, body, _ = await probe.call("GET", "/missing/4")
    assert (status, body) == (404, {"message": "Thing 4 not found"})
    with pytest.raises(InternalError, match="no handler for Unhandled"):
        await probe.system.ask(Unhandled())
    assert probe.system.restarts_total() == 0
    assert STATE.boots[0] == 1


@pytest.mark.parametrize("key", [2**63, -(2**63) - 1, 10**30])
async def test_an_integer_too_big_for_the_database_is_a_400_not_a_crash(start_probe, key):
    probe = await start_probe(workers=1)
    status, body, _ = await probe.call("POST", "/echo", json={"key": key, "text": "big"})
    assert (status, body) == (400, {"message": "Invalid request body: integer out of range"})
    status, body, _ = await probe.call("POST", "/echo", json={"key": 2**63 - 1, "text": "12345678901234567890"})
    assert status == 200 and body["text"] == "12345678901234567890"  # long digit strings are fine
    assert probe.system.restarts_total() == 0


async def test_restarts_are_counted_in_metrics(start_probe):
    probe = await start_probe(workers=1)
    for _ in range(2):
        assert (await probe.call("POST", "/crash/1"))[0] == 500
    await probe.call("GET", "/echo/1")
    async with probe.session.get(probe.base_url + "/metrics") as resp:
        text = await resp.text()
    assert 'actor_restarts_total{service="probe"} 2' in text
    assert 'actor_escalated{service="probe"} 0' in text


async def test_too_many_crashes_escalate_and_the_service_reports_down(start_probe):
    probe = await start_probe(workers=1, supervisor_max_restarts=2, supervisor_window_s=60)
    for _ in range(3):  # two restarts are allowed; the third crash exceeds the intensity
        status, body, _ = await probe.call("POST", "/crash/1")
        assert (status, body) == (500, {"message": "Internal server error"})

    assert await eventually(lambda: _async(probe.system.escalation))
    assert "failed more than 2 times" in probe.system.escalation
    assert probe.system.restarts_total() == 2

    status, body, _ = await probe.call("GET", "/health")
    assert status == 503
    assert body["status"] == "down"
    assert body["service"] == "probe"
    assert "failed more than 2 times" in body["checks"]["supervisor"]

    status, body, headers = await probe.call("GET", "/echo/1")
    assert status == 503
    assert "unavailable" in body["message"]
    assert "Retry-After" in headers
    with pytest.raises(ServiceUnavailable):
        await probe.system.ask(Echo(key=1))


async def test_an_escalated_service_restarts_whole_after_a_backoff_that_grows(start_probe):
    policy = RestartPolicy(max_restarts=1, window_s=60, service_backoff_base_s=0.3, service_backoff_max_s=5)
    probe = await start_probe(workers=2, policy=policy)
    for _ in range(2):  # one restart allowed; the second crash escalates
        assert (await probe.call("POST", "/crash/1"))[0] == 500
    assert "service restart in 0.3s" in await eventually(lambda: _async(probe.system.escalation))
    assert (await probe.call("GET", "/health"))[0] == 503

    # The whole service comes back by itself: no process restart, no operator.
    assert await eventually(lambda: _async(probe.system.escalation is None), timeout=5)
    status, body, _ = await probe.call("GET", "/echo/1")
    assert (status, body["text"]) == (200, "hello")
    assert (await probe.call("GET", "/health"))[0] == 200
    crashed = probe.system.router.routees.index(probe.system.router.route(1))
    # One restart, then the service restart: both workers booted afresh (same mailboxes).
    assert STATE.boots == Counter({crashed: 3, 1 - crashed: 2})

    # Failing again right after the restart backs off longer.
    for _ in range(2):
        assert (await probe.call("POST", "/crash/1"))[0] == 500
    assert "service restart in 0.6s" in await eventually(lambda: _async(probe.system.escalation))
    assert await eventually(lambda: _async(probe.system.escalation is None), timeout=5)
    assert (await probe.call("GET", "/echo/1"))[0] == 200


async def test_crashes_spread_over_time_stay_within_the_intensity(start_probe):
    # A window this short forgets each crash before the next one: restarts never run out.
    probe = await start_probe(workers=1, supervisor_max_restarts=1, supervisor_window_s=0.001)
    for _ in range(4):
        assert (await probe.call("POST", "/crash/1"))[0] == 500
        assert (await probe.call("GET", "/echo/1"))[0] == 200
    assert probe.system.escalation is None
    assert probe.system.restarts_total() == 4


async def test_one_for_one_leaves_sibling_workers_running(start_probe):
    probe = await start_probe(workers=2)
    first, second = key_of_worker(probe.system, 0), key_of_worker(probe.system, 1)
    await probe.system.ask(Echo(key=second))
    with pytest.raises(InternalError):
        await probe.system.ask(Crash(key=first))
    await probe.system.ask(Echo(key=first))  # handled after worker 0 restarted
    await probe.system.ask(Echo(key=second))  # handled after any message the supervisor sent worker 1
    assert STATE.boots == Counter({0: 2, 1: 1})


async def test_one_for_all_restarts_every_sibling(start_probe):
    probe = await start_probe(workers=2, policy=RestartPolicy(strategy="one_for_all", max_restarts=5,
                                                              window_s=10))
    first, second = key_of_worker(probe.system, 0), key_of_worker(probe.system, 1)
    with pytest.raises(InternalError):
        await probe.system.ask(Crash(key=first))
    await probe.system.ask(Echo(key=first))
    await probe.system.ask(Echo(key=second))  # queued after the Restart the supervisor sent it
    assert STATE.boots == Counter({0: 2, 1: 2})
    assert probe.system.restarts_total() == 1
    assert (await probe.call("GET", "/health"))[0] == 200


# -- back-pressure and the bridge ----------------------------------------------------------------


async def test_full_mailbox_answers_503_with_retry_after_and_counts_a_dead_letter(start_probe):
    probe = await start_probe(workers=1, mailbox_size=1)
    blocked = asyncio.create_task(probe.call("POST", "/block/1"))
    assert await asyncio.to_thread(STATE.blocked.wait, WAIT_S)

    # The worker is busy: one ask fits in its mailbox, the rest are refused at once.
    calls = [asyncio.create_task(probe.call("GET", "/echo/1")) for _ in range(4)]
    assert await eventually(lambda: _async(sum(c.done() for c in calls) == 3))
    refused = [c.result() for c in calls if c.done()]
    for status, body, headers in refused:
        assert status == 503
        assert "overloaded" in body["message"]
        assert headers["Retry-After"] == "1"
    assert probe.system.dead_letters.counts()[("probe", "mailbox-full")] == 3

    STATE.gate.set()  # the held command and the one queued behind it now complete
    assert (await blocked)[0] == 200
    statuses = sorted(status for status, _, _ in await asyncio.gather(*calls))
    assert statuses == [200, 503, 503, 503]
    async with probe.session.get(probe.base_url + "/metrics") as resp:
        assert 'actor_dead_letters_total{service="probe"} 3' in await resp.text()


async def test_a_blocked_worker_does_not_block_the_http_loop(start_probe):
    probe = await start_probe(workers=2)
    first, second = key_of_worker(probe.system, 0), key_of_worker(probe.system, 1)
    blocked = asyncio.create_task(probe.call("POST", f"/block/{first}"))
    assert await asyncio.to_thread(STATE.blocked.wait, WAIT_S)

    status, body, _ = await probe.call("GET", f"/echo/{second}")  # another worker, same service
    assert status == 200 and body["worker"] == 1
    async with probe.session.get(probe.base_url + "/metrics") as resp:
        assert resp.status == 200
    assert not blocked.done()

    STATE.gate.set()
    status, body, _ = await blocked
    assert (status, body) == (200, {"released": True, "worker": 0})


async def test_an_ask_that_is_not_answered_in_time_gives_up(start_probe):
    probe = await start_probe(workers=1)
    blocked = asyncio.create_task(probe.system.ask(Block(key=1)))
    assert await asyncio.to_thread(STATE.blocked.wait, WAIT_S)
    with pytest.raises(UpstreamTimeout, match="did not answer"):
        await probe.system.ask(Echo(key=1), timeout=0.1)
    STATE.gate.set()
    assert (await blocked)["released"] is True


async def test_asks_after_stop_are_refused_cleanly(start_probe):
    probe = await start_probe(workers=1)
    await probe.system.stop()
    with pytest.raises(ServiceUnavailable):
        await probe.system.ask(Echo(key=1))


# -- timers owned by workers ---------------------------------------------------------------------


async def test_periodic_timer_delivers_commands_to_its_worker(start_probe):
    await start_probe(workers=2, tick_interval_s=0.01)
    assert await eventually(lambda: _async(STATE.ticks[0] >= 3))
    assert STATE.ticks[1] == 0  # only worker 0 started one
    assert STATE.timers[0].active == ["tick"]


async def test_timers_survive_a_restart_and_stop_with_the_worker(start_probe):
    probe = await start_probe(workers=1, tick_interval_s=0.01)
    timers = STATE.timers[0]
    first_tick = timers._active["tick"]  # noqa: SLF001 - white-box: the scheduled entry
    with pytest.raises(InternalError):
        await probe.system.ask(Crash(key=0))
    await probe.system.ask(Echo(key=0))
    assert first_tick.cancelled  # the crashed incarnation's timer is gone...
    assert timers.active == ["tick"]  # ...and the restarted one started its own
    before = STATE.ticks[0]
    assert await eventually(lambda: _async(STATE.ticks[0] > before))

    second_tick = timers._active["tick"]  # noqa: SLF001
    await probe.system.stop()
    assert second_tick.cancelled and timers.active == []


async def _async(value):
    return value


# -- transactions that lose a race --------------------------------------------------------------


async def test_a_deadlocked_handler_runs_again_and_succeeds(start_probe):
    probe = await start_probe(workers=1)
    assert await probe.system.ask(LoseRace(key=1, fails=2)) == {"attempts": 3}
    assert probe.system.restarts_total() == 0  # a lost race is not a crash


async def test_a_handler_that_keeps_deadlocking_is_a_503_not_a_crash(start_probe):
    probe = await start_probe(workers=1)
    with pytest.raises(ServiceUnavailable, match="busy"):
        await probe.system.ask(LoseRace(key=2, fails=99))
    assert STATE.attempts[2] == 3
    assert probe.system.restarts_total() == 0


async def test_a_command_with_outside_effects_is_never_rerun(start_probe):
    probe = await start_probe(workers=1)
    with pytest.raises(ServiceUnavailable):
        await probe.system.ask(LoseRaceOnce(key=3, fails=1))
    assert STATE.attempts[3] == 1
