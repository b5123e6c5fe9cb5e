"""bcrypt reads at most 72 bytes (bcrypt 5 raises past them): a longer password is a clear 400
where one is set, and simply wrong (401) at login. Bytes, not characters: an emoji takes four.
It used to be a 500, since the length check counted characters.
"""

from __future__ import annotations

import re
import uuid

from mc_testkit import eventually

SERVICES = ["gateway", "user", "notification"]
FITS = "😀" * 18  # 18 characters, 72 bytes
TOO_LONG = "😀" * 19  # 19 characters, 76 bytes: under the 128-character cap, over bcrypt's limit
TOO_LONG_MESSAGE = "Password is too long: at most 72 bytes in UTF-8"


def new_email() -> str:
    return f"emoji-{uuid.uuid4().hex[:8]}@example.com"


def assert_too_long(reply) -> None:
    assert reply.status == 400, reply
    assert reply.body["message"].startswith(TOO_LONG_MESSAGE), reply


async def test_signup_and_admin_creation(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    email = new_email()
    assert_too_long(await platform.post("/auth/signup", json={"name": "E", "email": email, "password": TOO_LONG}))
    assert_too_long(await platform.post("/users", token=admin,
                                        json={"name": "E", "email": new_email(), "password": TOO_LONG}))
    await platform.signup(email=email, password=FITS)
    assert await platform.login(email, FITS)
    created = await platform.post("/users", token=admin, json={"name": "F", "email": new_email(), "password": FITS})
    assert created.status == 201, created
    # Logging in with a too-long password is just a wrong password, for a known or unknown email.
    for who in (email, new_email()):
        reply = await platform.post("/auth/login", json={"email": who, "password": TOO_LONG})
        assert (reply.status, reply.body) == (401, {"message": "Invalid email or password"})
    assert platform.system("user").restarts_total() == 0


async def test_reset_password_and_reset_with_a_code(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    reply = await platform.post("/auth/reset-password", token=token,
                                json={"oldPassword": "password123", "newPassword": TOO_LONG})
    assert_too_long(reply)
    reply = await platform.post("/auth/reset-password", token=token,
                                json={"oldPassword": "password123", "newPassword": FITS})
    assert reply.status == 200, reply
    assert await platform.login(user["email"], FITS)

    assert (await platform.post("/auth/forgot-password", json={"email": user["email"]})).status == 200
    admin = await platform.admin_token()

    async def code():
        reply = await platform.get(f"/notifications/dev/outbox?to={user['email']}", token=admin)
        mail = next((m for m in reply.body["messages"] if m["subject"] == "Your password reset code"), None)
        return re.search(r"\b(\d{6})\b", mail["body"]).group(1) if mail else None

    otp = await eventually(code)
    body = {"email": user["email"], "otp": otp}
    assert_too_long(await platform.post("/auth/reset-password/otp", json={**body, "newPassword": TOO_LONG}))
    # The refused attempt did not use the code up.
    reply = await platform.post("/auth/reset-password/otp", json={**body, "newPassword": "é" * 36})
    assert reply.status == 200, reply
    assert await platform.login(user["email"], "é" * 36)
