"""Schemathesis against the gateway's own OpenAPI document, over real HTTP to a real platform.

Every public operation is called with generated valid and invalid input, three times over:
without a token, as a shopper, as an admin. No answer may be a 500, and every answer must be
one the document lists, with the body its schema says. Examples per operation are bounded and
derandomized, so a run is repeatable and takes well under a minute.

The platform serves from its own thread and event loop: schemathesis calls are blocking.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
import schemathesis
from mc_testkit import Platform, start_platform, stop_platform
from schemathesis import checks
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test
from schemathesis.python._constants.orchestrator import make_constants_value_source

from microcommerce.services import implemented_services
from microcommerce.services.user import domain as user_domain
from microcommerce.services.user.messages import EnsureAdmin

MAX_EXAMPLES = 20  # per operation and mode, for the callers the operation is meant for
FEW_EXAMPLES = 3  # for the others: their answer is 401/403 whatever the input
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance]
PHASES = ["examples", "coverage", "fuzzing"]
PASSWORD = "fuzz-password-1"


class BackgroundPlatform:
    """A platform on its own loop in a daemon thread; `run` waits for a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-platform", daemon=True)
        self.thread.start()
        self.platform: Platform = self.run(start_platform(implemented_services(), demo_catalog=True))

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        try:
            self.run(stop_platform(self.platform))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


class Caller:
    """Who calls: nobody, a shopper, an admin. A token the fuzzer made invalid (it may delete or
    block its own account, or change its role) is replaced by a fresh account's."""

    def __init__(self, background: BackgroundPlatform, role: str) -> None:
        self.background = background
        self.role = role
        self.token: str | None = None

    def headers(self) -> dict[str, str]:
        if self.role == "anonymous":
            return {}
        if self.token is None:
            self.token = self.background.run(self._new_token())
        return {"Authorization": f"Bearer {self.token}"}

    def saw(self, status: int) -> None:
        if status == 401:
            self.token = None

    async def _new_token(self) -> str:
        platform = self.background.platform
        if self.role == "user":
            return (await platform.new_user(PASSWORD))[1]
        email = f"fuzz-admin-{uuid.uuid4().hex[:8]}@example.com"
        password_hash = user_domain.hash_password(PASSWORD, platform.settings.password_hash_cost)
        await platform.system("user").ask(EnsureAdmin(name="Fuzz Admin", email=email, password_hash=password_hash))
        return await platform.login(email, PASSWORD)


@pytest.fixture(scope="module")
def background() -> Iterator[BackgroundPlatform]:
    background = BackgroundPlatform()
    yield background
    background.close()


@pytest.fixture(params=["anonymous", "user", "admin"])
def caller(request: pytest.FixtureRequest, background: BackgroundPlatform) -> Caller:
    return Caller(background, request.param)


def test_gateway_conforms_to_its_document(background: BackgroundPlatform, caller: Caller) -> None:
    schema = schemathesis.openapi.from_url(background.platform.url() + "/openapi.json")
    schema.config.phases.update(phases=PHASES)
    schema.config.generation.update(deterministic=True, database="none")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30, "the gateway's document lost most of its operations"
    feedback = FeedbackSources(constants_value_source=make_constants_value_source(schema))
    failures: list[str] = []
    for operation in operations:
        schema.config.generation.update(max_examples=_examples(operation.definition.raw, caller.role))
        try:
            _fuzz(schema, operation, caller, feedback)
        except Exception as exc:  # noqa: BLE001 - every failing operation goes in one report
            failures.append(f"{operation.label} ({caller.role}):\n{exc}")
    assert not failures, "\n\n".join(failures)


def _examples(definition: dict[str, Any], role: str) -> int:
    if not definition.get("security"):
        meant = role == "anonymous"
    else:
        meant = role != "anonymous" and role in definition.get("x-roles", [role])
    return MAX_EXAMPLES if meant else FEW_EXAMPLES


def _fuzz(schema: Any, operation: Any, caller: Caller, feedback: FeedbackSources) -> None:
    """The operation's examples, boundary (coverage) cases and fuzzed cases, valid and invalid,
    as schemathesis' own pytest plugin builds them."""

    def check(case: Any) -> None:
        response = case.call(headers=caller.headers())
        caller.saw(response.status_code)
        case.validate_response(response, checks=CHECKS)

    test = build_operation_test(config=schema.config, operation=operation, test_func=check,
                                given_kwargs={}, feedback=feedback)
    test()
