"""Assembles one process: which services, which bus, databases, ports; start and stop order."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from microcommerce.actors.bus import EventBus, LocalBus
from microcommerce.actors.deadletters import DeadLetters
from microcommerce.actors.faults import DatabaseFactory, FaultInjector
from microcommerce.actors.requests import LocalRequester, Requester
from microcommerce.actors.runtime import Runtime
from microcommerce.actors.system import ActorSystem
from microcommerce.actors.threaded import ThreadedRuntime
from microcommerce.config import Settings
from microcommerce.contracts import registry  # noqa: F401 - every event type known before decoding
from microcommerce.http.app import NODE, create_app
from microcommerce.http.auth import Revocations, TokenIssuer
from microcommerce.http.revocation_sync import RevocationSync
from microcommerce.services import ServiceSpec, implemented_services, load_spec

log = logging.getLogger(__name__)


@dataclass
class HostedService:
    """One service of this process: its app, its actor system (None for the gateway), its server."""

    spec: ServiceSpec
    app: web.Application
    system: ActorSystem | None
    runner: web.AppRunner | None = None
    port: int | None = None


def open_bus(settings: Settings) -> EventBus:
    """The event transport `BUS_URL` names: the in-process bus, or Kafka."""
    if settings.bus_url == "local":
        return LocalBus()
    from microcommerce.kafka import open_kafka_bus  # kafka-python only where it is used

    return open_kafka_bus(settings)


def open_requester(settings: Settings, services: list[str]) -> Requester:
    """For a per-service process: in-process asks when every service runs here; otherwise HTTP
    to the others' `{SERVICE}_SERVICE_URL` (dev, even with a subset, stays in-process)."""
    if set(implemented_services()) <= set(services):
        return LocalRequester()
    from microcommerce.http.requester import HttpRequester

    return HttpRequester(settings)


class Node:
    """The services of this process. `dev` runs all ten; `serve` runs the ones it is given."""

    def __init__(self, settings: Settings, services: list[str], *, bus: EventBus | None = None,
                 requester: Requester | None = None,
                 serve_http: bool = True, listen: bool = True, faults: FaultInjector | None = None,
                 database_factory: DatabaseFactory | None = None,
                 runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or ThreadedRuntime()
        self.service_names = services
        self.bus = bus or open_bus(settings)
        self.requester = requester or LocalRequester()
        self.serve_http = serve_http
        self.listen = listen  # False: apps are set up and reachable in-process only (simulation)
        self.faults = faults  # the chaos harness's seams; None in production
        self.database_factory = database_factory
        self.dead_letters = DeadLetters()
        self.revocations = Revocations()
        self.issuer = TokenIssuer(settings.jwt_secret, settings.jwt_ttl_s, self.revocations)
        self.revocation_sync = RevocationSync(self.bus, self.requester, self.revocations,
                                              timeout_s=settings.timeout_of("user"))
        self.services: dict[str, HostedService] = {}
        self.ready_results: dict[str, Any] = {}

    def system(self, name: str) -> ActorSystem:
        system = self.services[name].system
        if system is None:
            raise KeyError(f"{name} has no actor system")
        return system

    async def start(self) -> None:
        self.bus.start()
        specs = [load_spec(name) for name in self.service_names]
        # Every consumer group is known before any relay sends: an event for a service that
        # starts later waits for it instead of being lost.
        for spec in specs:
            for topic in spec.logic.consumed_topics() if spec.logic is not None else ():
                self.bus.declare(topic, spec.name)
        self.revocation_sync.subscribe(f"auth-{id(self)}")
        try:
            for spec in specs:
                await self._start_service(spec)
            for name, hosted in self.services.items():
                if hosted.spec.on_ready is not None:
                    self.ready_results[name] = await hosted.spec.on_ready(self)
            await self.revocation_sync.start()  # revocations known before the first request
            # Ports open last, the gateway's after every service's: no early 503s.
            if self.serve_http:
                for hosted in sorted(self.services.values(), key=lambda r: r.spec.name == "gateway"):
                    await self._serve(hosted)
        except BaseException:
            await self.stop()
            raise

    async def _start_service(self, spec: ServiceSpec) -> None:
        system = None
        if spec.logic is not None:
            system = ActorSystem(spec.name, self.settings, self.bus, spec.logic, spec.schema_dir,
                                 workers=spec.workers, dead_letters=self.dead_letters,
                                 requester=self.requester, faults=self.faults,
                                 database_factory=self.database_factory, runtime=self.runtime)
            applied = await system.migrate()
            if applied:
                log.info("%s: applied migrations %s", spec.name, ", ".join(applied))
            await system.start()
        # Services report their HTTP activity to audit; the gateway would only double it.
        activity_bus = self.bus if spec.logic is not None else None
        app = create_app(spec.name, self.settings, self.issuer, system=system, bus=activity_bus,
                         setup_routes=spec.setup_routes)
        app[NODE] = self
        self.services[spec.name] = HostedService(spec, app, system)

    async def _serve(self, hosted: HostedService) -> None:
        hosted.runner = web.AppRunner(hosted.app, access_log=None, handle_signals=False)
        await hosted.runner.setup()
        if not self.listen:
            return
        port = self.settings.port_of(hosted.spec.name)
        await web.TCPSite(hosted.runner, self.settings.host, port, reuse_address=True).start()
        hosted.port = port

    async def stop(self) -> None:
        """HTTP first (no new work), then each system drains its mailboxes, then the bus."""
        await self.revocation_sync.stop()
        for hosted in self.services.values():
            if hosted.runner is not None:
                await hosted.runner.cleanup()
                hosted.runner = None
        for hosted in reversed(list(self.services.values())):
            if hosted.system is not None:
                await hosted.system.stop()
        await self.requester.close_all()  # workers closed their own sessions; this loop's last
        # A durable bus flushes its producer and commits what consumers finished.
        if self.bus.durable:
            await asyncio.to_thread(self.bus.stop)
        else:
            self.bus.stop()
