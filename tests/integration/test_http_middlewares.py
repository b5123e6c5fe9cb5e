"""SPEC section 3 on real ports: auth, JSON errors, 404s, rate limit, headers, request ids, CORS,
/health, /metrics, the internal guard and token revocation."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pytest
from mc_testkit import ADMIN_EMAIL, eventually

from microcommerce.contracts.events import AUDIT_EVENTS

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "geolocation=(), microphone=(), camera=()",
    "Cross-Origin-Resource-Policy": "same-site",
}
SERVICES = ("gateway", "user")


@pytest.fixture
async def platform(make_platform):
    return await make_platform(["gateway", "user"])


def forged_token(platform, *, secret: str | None = None, expires_in: int = 3600, sub: str = "1",
                 role: str = "admin") -> str:
    now = int(time.time())
    claims = {"sub": sub, "role": role, "tv": 0, "jti": f"forged-{now}", "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, secret or platform.settings.jwt_secret, algorithm="HS256")


def assert_json_error(reply, status: int) -> None:
    assert reply.status == status, reply
    assert isinstance(reply.body, dict) and isinstance(reply.body.get("message"), str), reply
    assert reply.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in reply.body["message"]


# -- authentication and roles -------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
async def test_missing_token_is_401(platform, service):
    reply = await platform.get("/auth/session", service=service)
    assert_json_error(reply, 401)
    assert reply.body["message"] == "Authentication required"


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a.b.c"])
async def test_malformed_authorization_is_401(platform, service, header):
    reply = await platform.get("/auth/session", service=service, headers={"Authorization": header})
    assert_json_error(reply, 401)


@pytest.mark.parametrize("service", SERVICES)
async def test_token_signed_with_another_secret_is_401(platform, service):
    token = forged_token(platform, secret="some-other-secret-of-32-characters")
    reply = await platform.get("/auth/users", service=service, token=token)
    assert_json_error(reply, 401)
    assert reply.body["message"] == "Invalid token"


@pytest.mark.parametrize("service", SERVICES)
async def test_expired_token_is_401(platform, service):
    reply = await platform.get("/auth/session", service=service, token=forged_token(platform, expires_in=-60))
    assert_json_error(reply, 401)
    assert reply.body["message"] == "Token expired"


async def test_token_without_subject_is_401(platform):
    token = jwt.encode({"role": "admin", "exp": int(time.time()) + 60}, platform.settings.jwt_secret,
                       algorithm="HS256")
    assert_json_error(await platform.get("/auth/users", token=token), 401)


async def test_unsigned_token_is_401(platform):
    token = jwt.encode({"sub": "1", "role": "admin", "exp": int(time.time()) + 60}, None, algorithm="none")
    assert_json_error(await platform.get("/auth/users", token=token), 401)


@pytest.mark.parametrize("service", SERVICES)
async def test_wrong_role_is_403(platform, service):
    _, token = await platform.new_user()
    reply = await platform.get("/auth/users", service=service, token=token)
    assert_json_error(reply, 403)
    assert "admin" in reply.body["message"]


async def test_valid_token_passes(platform):
    user, token = await platform.new_user()
    reply = await platform.get("/auth/session", token=token)
    assert reply.status == 200 and reply.body["user"]["id"] == user["id"]


# -- bad bodies are 400, never 500 ------------------------------------------------------------------


BAD_BODIES = [
    ('{"name": "A", "email": "a@example.com", "password": ', "Malformed JSON body"),
    ("not json at all", "Malformed JSON body"),
    ("", "Request body is required (JSON)"),
    ("[1, 2, 3]", "Invalid request body"),
    ('"just a string"', "Invalid request body"),
    ('{"name": 5, "email": "a@example.com", "password": "password123"}', "Invalid request body"),
    ('{"name": "A", "email": ["a@example.com"], "password": "password123"}', "Invalid request body"),
    ('{"name": "A", "email": "a@example.com"}', "Invalid request body"),
    ('{"name": "A", "email": "a@example.com", "password": null}', "Invalid request body"),
    ('{"name": "A", "email": "a@example.com", "password": "password123"', "Malformed JSON body"),
    ("\xff\xfe garbage", "Malformed JSON body"),
]


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(("raw", "message"), BAD_BODIES)
async def test_bad_signup_bodies_are_400_with_a_message(platform, service, raw, message):
    reply = await platform.post("/auth/signup", service=service, data=raw.encode("utf-8", "surrogateescape"),
                                headers={"Content-Type": "application/json"})
    assert_json_error(reply, 400)
    assert reply.body["message"].startswith(message)


async def test_wrong_type_message_names_the_field(platform):
    reply = await platform.post("/auth/signup", json={"name": "A", "email": "a@example.com", "password": 12345678})
    assert_json_error(reply, 400)
    assert "password" in reply.body["message"] and "str" in reply.body["message"]


@pytest.mark.parametrize("path", ["/users/abc", "/users/0", "/users/-3", "/users/1.5",
                                  "/users/9223372036854775808", "/users/99999999999999999999999"])
async def test_bad_path_ids_are_400(platform, path):
    admin = await platform.admin_token()
    reply = await platform.get(path, token=admin)
    assert_json_error(reply, 400)
    assert "id must be a positive integer" in reply.body["message"]


async def test_bad_query_parameter_is_400(platform):
    admin = await platform.admin_token()
    reply = await platform.get("/auth/users?limit=lots", token=admin)
    assert_json_error(reply, 400)
    assert "limit" in reply.body["message"]


async def test_body_too_large_is_413_json(platform):
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    reply = await platform.post("/auth/signup", service="user", data=big,
                                headers={"Content-Type": "application/json"})
    assert_json_error(reply, 413)


# -- unknown routes and methods ------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
async def test_unknown_route_is_a_json_404(platform, service):
    reply = await platform.get("/unknown-route", service=service)
    assert reply.status == 404
    assert reply.body == {"message": "Route not found: GET /unknown-route"}


async def test_unknown_route_under_a_known_prefix_is_a_json_404(platform):
    reply = await platform.request("DELETE", "/auth/nothing-here")
    assert reply.status == 404
    assert reply.body == {"message": "Route not found: DELETE /auth/nothing-here"}


async def test_wrong_method_on_a_known_route_is_json(platform):
    reply = await platform.request("PATCH", "/auth/login", service="user")
    assert_json_error(reply, 405)


# -- rate limit ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
async def test_rate_limit_answers_429_json_with_headers(make_platform, service):
    platform = await make_platform(["gateway", "user"], rate_limit_max=3)
    replies = [await platform.get("/unknown-route", service=service) for _ in range(4)]
    assert [r.status for r in replies] == [404, 404, 404, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0", "0"]
    limited = replies[-1]
    assert_json_error(limited, 429)
    assert limited.headers["X-RateLimit-Limit"] == "3"
    reset = int(limited.headers["X-RateLimit-Reset"])
    assert time.time() - 5 < reset <= time.time() + 61
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    for name, value in SECURITY_HEADERS.items():
        assert limited.headers[name] == value


async def test_health_and_metrics_are_not_rate_limited(make_platform):
    platform = await make_platform(["gateway", "user"], rate_limit_max=2)
    for _ in range(4):
        assert (await platform.get("/health", service="user")).status == 200
        assert (await platform.get("/metrics", service="user")).status == 200
    assert (await platform.get("/unknown-route", service="user")).status == 404


async def test_calls_from_the_gateway_are_limited_once_not_twice(make_platform):
    platform = await make_platform(["gateway", "user"], rate_limit_max=3)
    replies = [await platform.get("/auth/session") for _ in range(3)]
    # The user service trusts the gateway's internal token: its own limit never kicks in first.
    assert [r.status for r in replies] == [401, 401, 401]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0"]
    assert (await platform.get("/auth/session")).status == 429


async def test_rate_limit_window_resets(make_platform):
    platform = await make_platform(["gateway", "user"], rate_limit_max=1, rate_limit_window_ms=300)
    assert (await platform.get("/unknown-route", service="user")).status == 404
    limited = await platform.get("/unknown-route", service="user")
    assert limited.status == 429
    reset_at = int(limited.headers["X-RateLimit-Reset"])
    assert reset_at <= time.time() + 1
    await asyncio.sleep(0.35)  # let the 300 ms window pass
    assert (await platform.get("/unknown-route", service="user")).status == 404


# -- security headers, server software, request ids -------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/health", 200),
    ("GET", "/auth/session", 401),
    ("GET", "/unknown-route", 404),
    ("POST", "/auth/signup", 400),
])
async def test_security_headers_on_every_response(platform, service, method, path, status):
    reply = await platform.request(method, path, service=service, data=b"{")
    assert reply.status == status
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers.get(name) == value, name


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("path", ["/health", "/unknown-route", "/auth/session", "/metrics"])
async def test_no_header_advertises_the_server_software(platform, service, path):
    reply = await platform.get(path, service=service)
    for name, value in reply.headers.items():
        text = f"{name}: {value}".lower()
        assert "aiohttp" not in text and "python" not in text, text


@pytest.mark.parametrize("service", SERVICES)
async def test_request_id_is_kept_from_the_request(platform, service):
    request_id = f"req-{uuid.uuid4().hex}"
    for path in ("/health", "/unknown-route", "/auth/session"):
        reply = await platform.get(path, service=service, headers={"X-Request-Id": request_id})
        assert reply.headers["X-Request-Id"] == request_id


@pytest.mark.parametrize("service", SERVICES)
async def test_request_id_is_generated_when_missing(platform, service):
    first = await platform.get("/health", service=service)
    second = await platform.get("/unknown-route", service=service)
    ids = {first.headers["X-Request-Id"], second.headers["X-Request-Id"]}
    assert len(ids) == 2 and all(len(i) >= 16 for i in ids)


async def test_request_id_travels_through_the_gateway_to_the_service(platform):
    seen: list = []
    platform.node.bus.subscribe(AUDIT_EVENTS, "test-activity", lambda env, topic, key, done: seen.append(env))
    request_id = f"trace-{uuid.uuid4().hex}"
    user = await platform.signup()
    reply = await platform.post("/auth/login", json={"email": user["email"], "password": "password123"},
                                headers={"X-Request-Id": request_id})
    assert reply.status == 200 and reply.headers.getall("X-Request-Id") == [request_id]
    # The user service reports the write under the caller's id: the gateway passed it on.
    activity = {env.data.service: env.data.requestId for env in seen if env.data.path == "/auth/login"}
    assert activity["user"] == request_id


# -- CORS ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
async def test_cors_preflight(platform, service):
    reply = await platform.request("OPTIONS", "/auth/login", service=service, headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in reply.headers["Access-Control-Allow-Headers"]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


async def test_cors_headers_on_a_normal_response(platform):
    reply = await platform.get("/health", headers={"Origin": "https://shop.example"})
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Request-Id" in reply.headers["Access-Control-Expose-Headers"]


async def test_cors_restricted_to_configured_origins(make_platform):
    platform = await make_platform(["gateway", "user"], cors_origins=["https://shop.example"])
    allowed = await platform.request("OPTIONS", "/auth/login", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    other = await platform.request("OPTIONS", "/auth/login", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in other.headers


# -- /health and /metrics ------------------------------------------------------------------------------


async def test_service_health_reports_database_and_workers(platform):
    reply = await platform.get("/health", service="user")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.body["service"] == "user" and reply.body["status"] == "up"
    checks = reply.body["checks"]
    assert checks["db"] == "ok" and checks["supervisor"] == "ok"
    assert checks["workers"] == f"{platform.settings.workers}/{platform.settings.workers}"


async def test_gateway_health_reports_downstream_services(platform):
    reply = await platform.get("/health")
    assert reply.status == 200
    assert reply.body["service"] == "gateway" and reply.body["status"] == "up"
    assert reply.body["checks"]["services"] == {"user": "up"}


@pytest.mark.parametrize("service", SERVICES)
async def test_metrics_in_prometheus_text_format(platform, service):
    await platform.get("/auth/session", service=service)
    await platform.get("/auth/session", service=service)
    reply = await platform.get("/metrics", service=service)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    text = reply.body
    assert "# TYPE http_requests_total counter" in text
    route = "/auth/session" if service == "user" else "/{tail}"
    line = f'http_requests_total{{service="{service}",method="GET",route="{route}",status="401"}} 2'
    assert line in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert f'process_uptime_seconds{{service="{service}"}}' in text
    for sample in (ln for ln in text.splitlines() if ln and not ln.startswith("#")):
        name_and_labels, _, value = sample.rpartition(" ")
        assert name_and_labels and float(value) >= 0, sample


async def test_metrics_include_the_actor_runtime(platform):
    text = (await platform.get("/metrics", service="user")).body
    for name in ("actor_mailbox_depth_max", "actor_restarts_total", "actor_dead_letters_total",
                 "actor_escalated"):
        assert f'{name}{{service="user"}} 0' in text


async def test_unmatched_routes_share_one_metrics_label(platform):
    for i in range(3):
        await platform.get(f"/no-such-thing-{i}", service="user")
    text = (await platform.get("/metrics", service="user")).body
    assert 'route="unmatched",status="404"} 3' in text
    assert "no-such-thing" not in text  # unbounded paths must not become label values


# -- internal routes ---------------------------------------------------------------------------------------


async def test_internal_route_needs_the_internal_token_on_the_service_port(platform):
    reply = await platform.get("/internal/users/1", service="user")
    assert_json_error(reply, 403)
    forged = await platform.get("/internal/users/1", service="user", headers={"X-Internal-Token": "guess"})
    assert_json_error(forged, 403)
    trusted = await platform.get("/internal/users/1", service="user",
                                 headers={"X-Internal-Token": platform.settings.internal_token})
    assert trusted.status == 404  # past the guard; the user service has no such route


async def test_internal_route_is_not_found_through_the_gateway(platform):
    reply = await platform.get("/internal/users/1")
    assert reply.status == 404
    assert reply.body == {"message": "Route not found: GET /internal/users/1"}
    # Even with the right token: the gateway never exposes internal routes by default.
    reply = await platform.get("/internal/users/1", headers={"X-Internal-Token": platform.settings.internal_token})
    assert reply.status == 404


# -- token revocation ---------------------------------------------------------------------------------------


async def test_tokens_issued_before_a_password_change_stop_working(platform):
    user, old_token = await platform.new_user(password="old-password-1")
    second_old_token = await platform.login(user["email"], "old-password-1")
    reply = await platform.post("/auth/reset-password", token=old_token,
                                json={"oldPassword": "old-password-1", "newPassword": "new-password-2"})
    assert reply.status == 200
    new_token = reply.body["token"]
    for token in (old_token, second_old_token):
        for service in SERVICES:
            revoked = await platform.get("/auth/session", token=token, service=service)
            assert_json_error(revoked, 401)
    assert (await platform.get("/auth/session", token=new_token)).status == 200
    fresh_login = await platform.login(user["email"], "new-password-2")
    assert (await platform.get("/auth/session", token=fresh_login)).status == 200


async def test_admin_email_is_the_bootstrap_admin(platform):
    token = await platform.admin_token()
    reply = await platform.get("/auth/session", token=token)
    assert reply.body["user"]["email"] == ADMIN_EMAIL and reply.body["user"]["role"] == "admin"


async def test_metrics_show_the_outbox_draining(platform):
    await platform.signup()  # USER_CREATED goes through the user service's outbox

    async def drained() -> bool:
        text = (await platform.get("/metrics", service="user")).body
        published = next(float(line.split()[-1]) for line in text.splitlines()
                         if line.startswith('outbox_published_total{service="user"}'))
        return published >= 1 and 'outbox_in_flight{service="user"} 0' in text

    assert await eventually(drained)
