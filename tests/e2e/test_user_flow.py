"""Smoke: the user service through the gateway, as a new user would."""

from mc_testkit import eventually


async def test_signup_login_session_through_gateway(make_platform):
    platform = await make_platform(["gateway", "user"])
    user = await platform.signup(name="Alice", email="alice@example.com")
    assert user["role"] == "user" and user["accountStatus"] == "active"
    token = await platform.login("alice@example.com")
    reply = await platform.get("/auth/session", token=token)
    assert reply.status == 200
    assert reply.body["user"]["email"] == "alice@example.com"
    assert await eventually(lambda: _ok(platform))


async def _ok(platform):
    return (await platform.get("/health")).status == 200
