"""Keeps this process's token revocations right: user events as they come, plus the user
service's snapshot at start and every `REFRESH_S` (a safety net for a missed event).

The observer subscribes before the snapshot is asked for, so nothing that happens in between
is lost; `Revocations` merges the two so that neither undoes the other. The snapshot comes
through `requester.request("user", ...)`: in-process in `dev`, from another process in `serve`.
Until the first snapshot has arrived, authenticated requests get 503 (fail closed): the
alternative would accept tokens revoked before this process started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from microcommerce.actors.bus import EventBus
from microcommerce.actors.requests import Requester
from microcommerce.contracts import user as user_contract
from microcommerce.contracts.events import USER_EVENTS, EventEnvelope
from microcommerce.errors import ServiceError
from microcommerce.http.auth import Revocations

log = logging.getLogger(__name__)


class RevocationSync:
    REFRESH_S = 60.0
    RETRY_FIRST_S = 0.25
    RETRY_MAX_S = 2.0  # a process waiting for the user service learns soon after it is up

    def __init__(self, bus: EventBus, requester: Requester, revocations: Revocations, *,
                 timeout_s: float) -> None:
        self.bus = bus
        self.requester = requester
        self.revocations = revocations
        self.timeout_s = timeout_s
        self.snapshots_applied = 0
        self._task: asyncio.Task[None] | None = None
        self._unreachable_logged = False
        revocations.loaded = False  # fail closed until the user service has answered once

    def subscribe(self, group: str) -> None:
        """Follow user events; call before `start` so none is missed while the snapshot travels."""
        self.bus.subscribe(USER_EVENTS, group, self.observe)

    async def start(self) -> None:
        """Load the snapshot once (before ports open), then keep refreshing in the background."""
        loaded = await self.load_once()
        self._task = asyncio.create_task(self._refresh_forever(loaded), name="revocation-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def load_once(self) -> bool:
        try:
            snapshot = await self.requester.request("user", user_contract.GetRevocationSnapshot(),
                                                    timeout=self.timeout_s)
        except ServiceError as err:
            level = logging.DEBUG if self._unreachable_logged else logging.WARNING
            log.log(level, "token revocations: user service not reachable (%s); retrying", err.message)
            self._unreachable_logged = True
            return False
        self.revocations.apply_snapshot(snapshot)
        self.snapshots_applied += 1
        if self._unreachable_logged:
            log.warning("token revocations: loaded from the user service")
            self._unreachable_logged = False
        return True

    async def _refresh_forever(self, loaded: bool) -> None:
        delay = self.RETRY_FIRST_S
        while True:
            if loaded:
                delay = self.RETRY_FIRST_S
                await asyncio.sleep(self.REFRESH_S)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.RETRY_MAX_S)
            try:
                loaded = await self.load_once()
            except Exception:  # noqa: BLE001 - a bad snapshot must not end the safety net
                log.exception("token revocations: snapshot could not be applied")
                loaded = False

    def observe(self, envelope: EventEnvelope, topic: str, key: str, done: Any) -> None:
        """Bus callback: apply one user event (password change, role/status change, deletion, logout)."""
        data = envelope.data
        revocations = self.revocations
        name = envelope.eventType
        if name == user_contract.USER_PASSWORD_CHANGED:
            revocations.raise_min_version(data.id, data.tokenVersion)
        elif name == user_contract.USER_DELETED:
            revocations.set_void(data.id, True, as_of=envelope.occurredAt)
        elif name == user_contract.USER_UPDATED:
            revocations.raise_min_version(data.id, data.tokenVersion)
            revocations.set_void(data.id, data.accountStatus != "active", as_of=envelope.occurredAt)
            revocations.set_role(data.id, data.role, as_of=envelope.occurredAt)
        elif name == user_contract.USER_LOGGED_OUT:
            revocations.revoke_token(data.jti, data.exp)
        if done is not None:
            done()
