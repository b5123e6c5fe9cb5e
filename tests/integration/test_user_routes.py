"""Every user-service route of SPEC section 2, through the gateway, plus the events it publishes."""

from __future__ import annotations

import uuid

import pytest
from mc_testkit import ADMIN_EMAIL, eventually

from microcommerce.contracts.events import USER_EVENTS, EventEnvelope
from microcommerce.contracts.user import (
    PASSWORD_RESET_REQUESTED,
    USER_CREATED,
    USER_DELETED,
    USER_PASSWORD_CHANGED,
    USER_UPDATED,
)
from microcommerce.services.user.domain import OTP_MAX_ATTEMPTS
from microcommerce.services.user.routes import FORGOT_MESSAGE

PASSWORD = "password123"


class UserEvents:
    """A test consumer group on `user-events`."""

    def __init__(self, platform) -> None:
        self.envelopes: list[EventEnvelope] = []
        platform.node.bus.subscribe(USER_EVENTS, f"test-{uuid.uuid4().hex[:6]}", self._deliver)

    def _deliver(self, envelope: EventEnvelope, topic: str, key: str, done) -> None:
        self.envelopes.append(envelope)
        if done is not None:
            done()

    def of(self, event_type: str, **match) -> list[EventEnvelope]:
        return [e for e in self.envelopes if e.eventType == event_type
                and all(getattr(e.data, k) == v for k, v in match.items())]

    async def wait_for(self, event_type: str, **match) -> EventEnvelope:
        async def found():
            return self.of(event_type, **match)

        return (await eventually(found))[-1]


@pytest.fixture
async def platform(make_platform):
    return await make_platform(["gateway", "user"])


@pytest.fixture
def events(platform) -> UserEvents:
    return UserEvents(platform)


def email() -> str:
    return f"u-{uuid.uuid4().hex[:10]}@example.com"


async def login_reply(platform, address: str, password: str = PASSWORD):
    return await platform.post("/auth/login", json={"email": address, "password": password})


async def request_otp(platform, events: UserEvents, address: str) -> str:
    reply = await platform.post("/auth/forgot-password", json={"email": address})
    assert reply.status == 200
    return (await events.wait_for(PASSWORD_RESET_REQUESTED, email=address)).data.otp


# -- signup -------------------------------------------------------------------------------------------


async def test_signup_creates_a_user_and_announces_it(platform, events):
    address = email()
    reply = await platform.post("/auth/signup", json={"name": "Alice", "email": address, "password": PASSWORD})
    assert reply.status == 201
    body = reply.body
    assert {k: body[k] for k in ("name", "email", "role", "accountStatus")} == {
        "name": "Alice", "email": address, "role": "user", "accountStatus": "active"}
    assert isinstance(body["id"], int) and body["id"] > 0
    assert not any("password" in key.lower() for key in body)
    created = await events.wait_for(USER_CREATED, email=address)
    assert created.data.id == body["id"] and created.data.role == "user"
    assert created.producer == "user-service"


async def test_signup_normalizes_the_email(platform):
    reply = await platform.post("/auth/signup", json={"name": "Bo", "email": "  Bo.Smith@Example.COM ",
                                                      "password": PASSWORD})
    assert reply.status == 201 and reply.body["email"] == "bo.smith@example.com"
    assert (await login_reply(platform, "BO.SMITH@example.com")).status == 200


async def test_signup_with_a_taken_email_is_409(platform):
    address = email()
    await platform.signup(email=address)
    reply = await platform.post("/auth/signup", json={"name": "Again", "email": address.upper(),
                                                      "password": PASSWORD})
    assert reply.status == 409
    assert reply.body == {"message": "Email is already registered"}


async def test_signup_can_not_choose_a_role(platform, events):
    address = email()
    reply = await platform.post("/auth/signup", json={"name": "Mallory", "email": address, "password": PASSWORD,
                                                      "role": "admin", "accountStatus": "active"})
    assert reply.status == 201 and reply.body["role"] == "user"
    token = (await login_reply(platform, address)).body["token"]
    assert (await platform.get("/auth/users", token=token)).status == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "A", "email": "a@example.com", "password": "short"}, "password"),
    ({"name": "A", "email": "not-an-email", "password": PASSWORD}, "email"),
    ({"name": "A", "email": "a@nodot", "password": PASSWORD}, "email"),
    ({"name": "", "email": "a@example.com", "password": PASSWORD}, "name"),
    ({"email": "a@example.com", "password": PASSWORD}, "name"),
    ({"name": "A", "email": "a@example.com", "password": "x" * 129}, "password"),
])
async def test_invalid_signups_are_400_naming_the_field(platform, body, field):
    reply = await platform.post("/auth/signup", json=body)
    assert reply.status == 400, reply
    assert field in reply.body["message"]


# -- login and session ----------------------------------------------------------------------------------


async def test_login_returns_a_token_that_opens_the_session(platform):
    user = await platform.signup(name="Carol")
    reply = await login_reply(platform, user["email"])
    assert reply.status == 200 and isinstance(reply.body["token"], str)
    session = await platform.get("/auth/session", token=reply.body["token"])
    assert session.status == 200
    assert session.body["user"]["id"] == user["id"]
    assert session.body["user"]["role"] == "user"
    assert session.body["user"]["name"] == "Carol"


async def test_login_with_a_wrong_password_or_unknown_email_is_the_same_401(platform):
    user = await platform.signup()
    wrong = await login_reply(platform, user["email"], "not-the-password")
    unknown = await login_reply(platform, email())
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body == {"message": "Invalid email or password"}


async def test_login_body_is_validated(platform):
    assert (await platform.post("/auth/login", json={"email": "a@example.com"})).status == 400
    assert (await platform.post("/auth/login", json={"email": "a@example.com", "password": ""})).status == 400


async def test_a_blocked_account_can_not_log_in_and_its_tokens_stop_working(platform, events):
    user, token = await platform.new_user()
    admin = await platform.admin_token()
    reply = await platform.request("PUT", f"/users/{user['id']}", token=admin, json={"accountStatus": "blocked"})
    assert reply.status == 200 and reply.body["accountStatus"] == "blocked"
    blocked = await login_reply(platform, user["email"])
    assert blocked.status == 403
    assert blocked.body == {"message": "Account is blocked"}
    assert (await platform.get("/auth/session", token=token)).status == 401
    updated = await events.wait_for(USER_UPDATED, id=user["id"])
    assert updated.data.accountStatus == "blocked"

    reply = await platform.request("PUT", f"/users/{user['id']}", token=admin, json={"accountStatus": "active"})
    assert reply.status == 200
    assert (await login_reply(platform, user["email"])).status == 200


async def test_a_blocked_account_gets_no_reset_code(platform, events):
    user, _ = await platform.new_user()
    admin = await platform.admin_token()
    await platform.request("PUT", f"/users/{user['id']}", token=admin, json={"accountStatus": "blocked"})
    reply = await platform.post("/auth/forgot-password", json={"email": user["email"]})
    assert reply.status == 200 and reply.body == {"message": FORGOT_MESSAGE}
    marker = await platform.signup()  # a later request: its code proves the earlier one was handled
    await request_otp(platform, events, marker["email"])
    assert events.of(PASSWORD_RESET_REQUESTED, email=user["email"]) == []


# -- password reset by OTP ---------------------------------------------------------------------------------


async def test_forgot_password_answers_the_same_for_known_and_unknown_emails(platform, events):
    user = await platform.signup()
    known = await platform.post("/auth/forgot-password", json={"email": user["email"]})
    unknown_address = email()
    unknown = await platform.post("/auth/forgot-password", json={"email": unknown_address})
    assert known.status == unknown.status == 200
    assert known.body == unknown.body == {"message": FORGOT_MESSAGE}
    requested = await events.wait_for(PASSWORD_RESET_REQUESTED, email=user["email"])
    assert requested.data.userId == user["id"]
    assert len(requested.data.otp) == 6 and requested.data.otp.isdigit()
    assert events.of(PASSWORD_RESET_REQUESTED, email=unknown_address) == []


async def test_forgot_password_with_a_malformed_email_is_400(platform):
    reply = await platform.post("/auth/forgot-password", json={"email": "nobody"})
    assert reply.status == 400


async def test_reset_with_otp_sets_the_new_password(platform, events):
    user, old_token = await platform.new_user()
    otp = await request_otp(platform, events, user["email"])
    reply = await platform.post("/auth/reset-password/otp", json={"email": user["email"], "otp": otp,
                                                                  "newPassword": "brand-new-pass"})
    assert reply.status == 200 and "message" in reply.body
    assert (await login_reply(platform, user["email"], "brand-new-pass")).status == 200
    assert (await login_reply(platform, user["email"], PASSWORD)).status == 401
    assert (await platform.get("/auth/session", token=old_token)).status == 401
    changed = await events.wait_for(USER_PASSWORD_CHANGED, id=user["id"])
    assert changed.data.tokenVersion >= 1


async def test_an_otp_works_only_once(platform, events):
    user = await platform.signup()
    otp = await request_otp(platform, events, user["email"])
    body = {"email": user["email"], "otp": otp, "newPassword": "first-new-pass"}
    assert (await platform.post("/auth/reset-password/otp", json=body)).status == 200
    again = await platform.post("/auth/reset-password/otp", json={**body, "newPassword": "second-new-pass"})
    assert again.status == 400
    assert again.body == {"message": "Invalid or expired OTP"}
    assert (await login_reply(platform, user["email"], "first-new-pass")).status == 200


async def test_a_wrong_otp_is_400_and_leaves_the_password(platform, events):
    user = await platform.signup()
    otp = await request_otp(platform, events, user["email"])
    wrong = f"{(int(otp) + 1) % 1_000_000:06d}"
    reply = await platform.post("/auth/reset-password/otp", json={"email": user["email"], "otp": wrong,
                                                                  "newPassword": "attacker-pass"})
    assert reply.status == 400 and reply.body == {"message": "Invalid or expired OTP"}
    assert (await login_reply(platform, user["email"])).status == 200
    # The right code still works after one miss.
    reply = await platform.post("/auth/reset-password/otp", json={"email": user["email"], "otp": otp,
                                                                  "newPassword": "owner-new-pass"})
    assert reply.status == 200


async def test_too_many_wrong_otps_burn_the_code(platform, events):
    user = await platform.signup()
    otp = await request_otp(platform, events, user["email"])
    wrong = f"{(int(otp) + 1) % 1_000_000:06d}"
    for _ in range(OTP_MAX_ATTEMPTS):
        reply = await platform.post("/auth/reset-password/otp", json={"email": user["email"], "otp": wrong,
                                                                      "newPassword": "attacker-pass"})
        assert reply.status == 400
    reply = await platform.post("/auth/reset-password/otp", json={"email": user["email"], "otp": otp,
                                                                  "newPassword": "owner-new-pass"})
    assert reply.status == 400  # guessing is capped: even the right code is void now


async def test_a_new_code_voids_the_previous_one(platform, events):
    user = await platform.signup()
    first = await request_otp(platform, events, user["email"])
    await platform.post("/auth/forgot-password", json={"email": user["email"]})
    second = (await eventually(lambda: _nth_otp(events, user["email"], 2))).data.otp
    if first != second:  # (one in a million they match)
        reply = await platform.post("/auth/reset-password/otp", json={"email": user["email"], "otp": first,
                                                                      "newPassword": "new-pass-123"})
        assert reply.status == 400
    reply = await platform.post("/auth/reset-password/otp", json={"email": user["email"], "otp": second,
                                                                  "newPassword": "new-pass-123"})
    assert reply.status == 200


async def test_an_otp_is_bound_to_its_email(platform, events):
    victim, other = await platform.signup(), await platform.signup()
    otp = await request_otp(platform, events, victim["email"])
    reply = await platform.post("/auth/reset-password/otp", json={"email": other["email"], "otp": otp,
                                                                  "newPassword": "new-pass-123"})
    assert reply.status == 400
    unknown = await platform.post("/auth/reset-password/otp", json={"email": email(), "otp": otp,
                                                                    "newPassword": "new-pass-123"})
    assert unknown.status == 400 and unknown.body == reply.body


@pytest.mark.parametrize("body", [
    {"email": "a@example.com", "otp": "12345", "newPassword": "new-pass-123"},
    {"email": "a@example.com", "otp": "12a456", "newPassword": "new-pass-123"},
    {"email": "a@example.com", "otp": 123456, "newPassword": "new-pass-123"},
    {"email": "a@example.com", "otp": "123456", "newPassword": "short"},
])
async def test_malformed_otp_reset_bodies_are_400(platform, body):
    assert (await platform.post("/auth/reset-password/otp", json=body)).status == 400


# -- password change while logged in ---------------------------------------------------------------------------


async def test_reset_password_needs_the_old_password(platform):
    user, token = await platform.new_user()
    reply = await platform.post("/auth/reset-password", token=token,
                                json={"oldPassword": "not-it", "newPassword": "new-pass-123"})
    assert reply.status == 401
    assert reply.body == {"message": "Old password is incorrect"}
    assert (await platform.get("/auth/session", token=token)).status == 200
    assert (await login_reply(platform, user["email"])).status == 200


async def test_reset_password_changes_it_and_revokes_older_tokens(platform, events):
    user, token = await platform.new_user()
    reply = await platform.post("/auth/reset-password", token=token,
                                json={"oldPassword": PASSWORD, "newPassword": "new-pass-123"})
    assert reply.status == 200
    assert (await platform.get("/auth/session", token=token)).status == 401
    assert (await platform.get("/auth/session", token=reply.body["token"])).status == 200
    assert (await login_reply(platform, user["email"])).status == 401
    assert (await login_reply(platform, user["email"], "new-pass-123")).status == 200
    await events.wait_for(USER_PASSWORD_CHANGED, id=user["id"])


async def test_reset_password_requires_auth_and_a_valid_body(platform):
    body = {"oldPassword": PASSWORD, "newPassword": "new-pass-123"}
    assert (await platform.post("/auth/reset-password", json=body)).status == 401
    _, token = await platform.new_user()
    short = await platform.post("/auth/reset-password", token=token, json={**body, "newPassword": "short"})
    assert short.status == 400


# -- admin: list and create users -------------------------------------------------------------------------------


async def test_admin_lists_users(platform):
    created = [await platform.signup() for _ in range(3)]
    reply = await platform.get("/auth/users", token=await platform.admin_token())
    assert reply.status == 200
    listed = {u["email"]: u for u in reply.body["users"]}
    assert ADMIN_EMAIL in listed
    for user in created:
        assert listed[user["email"]]["id"] == user["id"]
    assert all("password" not in str(key).lower() for u in listed.values() for key in u)


async def test_user_list_pages(platform):
    for _ in range(3):
        await platform.signup()
    admin = await platform.admin_token()
    first = await platform.get("/auth/users?limit=2&offset=0", token=admin)
    second = await platform.get("/auth/users?limit=2&offset=2", token=admin)
    assert len(first.body["users"]) == 2 and len(second.body["users"]) == 2
    assert not {u["id"] for u in first.body["users"]} & {u["id"] for u in second.body["users"]}


async def test_only_admins_list_users(platform):
    _, token = await platform.new_user()
    assert (await platform.get("/auth/users", token=token)).status == 403
    assert (await platform.get("/auth/users")).status == 401


async def test_admin_creates_a_supplier(platform, events):
    address = email()
    admin = await platform.admin_token()
    reply = await platform.post("/users", token=admin, json={"name": "Sup", "email": address,
                                                             "password": PASSWORD, "role": "supplier"})
    assert reply.status == 201
    assert reply.body["role"] == "supplier" and reply.body["email"] == address
    login = await login_reply(platform, address)
    session = await platform.get("/auth/session", token=login.body["token"])
    assert session.body["user"]["role"] == "supplier"
    created = await events.wait_for(USER_CREATED, email=address)
    assert created.data.role == "supplier"


async def test_create_user_checks_role_conflict_and_caller(platform):
    admin = await platform.admin_token()
    bad_role = await platform.post("/users", token=admin, json={"name": "X", "email": email(),
                                                                "password": PASSWORD, "role": "root"})
    assert bad_role.status == 400 and "role" in bad_role.body["message"]
    taken = await platform.post("/users", token=admin, json={"name": "X", "email": ADMIN_EMAIL,
                                                             "password": PASSWORD, "role": "user"})
    assert taken.status == 409
    _, user_token = await platform.new_user()
    forbidden = await platform.post("/users", token=user_token, json={"name": "X", "email": email(),
                                                                      "password": PASSWORD, "role": "admin"})
    assert forbidden.status == 403


# -- GET / PUT / DELETE /users/:id ---------------------------------------------------------------------------


async def test_get_user_by_id(platform):
    user, token = await platform.new_user()
    reply = await platform.get(f"/users/{user['id']}", token=token)
    assert reply.status == 200 and reply.body["email"] == user["email"]
    assert (await platform.get(f"/users/{user['id']}")).status == 401
    missing = await platform.get("/users/999999", token=token)
    assert missing.status == 404 and missing.body == {"message": "User 999999 not found"}


async def test_owner_updates_their_profile(platform, events):
    user, token = await platform.new_user()
    new_address = email()
    reply = await platform.request("PUT", f"/users/{user['id']}", token=token,
                                   json={"name": "Renamed", "email": new_address})
    assert reply.status == 200
    assert reply.body["name"] == "Renamed" and reply.body["email"] == new_address
    assert (await platform.get(f"/users/{user['id']}", token=token)).body["name"] == "Renamed"
    assert (await login_reply(platform, new_address)).status == 200
    updated = await events.wait_for(USER_UPDATED, id=user["id"])
    assert updated.data.name == "Renamed" and updated.data.email == new_address


async def test_a_user_can_not_update_someone_else(platform):
    victim, _ = await platform.new_user()
    _, attacker = await platform.new_user()
    reply = await platform.request("PUT", f"/users/{victim['id']}", token=attacker, json={"name": "pwned"})
    assert reply.status == 403
    admin = await platform.admin_token()
    assert (await platform.get(f"/users/{victim['id']}", token=admin)).body["name"] == victim["name"]


@pytest.mark.parametrize("change", [{"role": "admin"}, {"role": "supplier"}, {"accountStatus": "active"},
                                    {"name": "ok", "role": "admin"}])
async def test_a_user_can_never_raise_their_own_role(platform, change):
    user, token = await platform.new_user()
    reply = await platform.request("PUT", f"/users/{user['id']}", token=token, json=change)
    assert reply.status == 403
    session = await platform.get("/auth/session", token=token)
    assert session.body["user"]["role"] == "user"
    assert session.body["user"]["name"] == user["name"]  # nothing of the refused change applied


async def test_admin_changes_a_role(platform, events):
    user, _ = await platform.new_user()
    admin = await platform.admin_token()
    reply = await platform.request("PUT", f"/users/{user['id']}", token=admin, json={"role": "supplier"})
    assert reply.status == 200 and reply.body["role"] == "supplier"
    token = (await login_reply(platform, user["email"])).body["token"]
    assert (await platform.get("/auth/session", token=token)).body["user"]["role"] == "supplier"
    assert (await events.wait_for(USER_UPDATED, id=user["id"])).data.role == "supplier"


async def test_update_validation_and_conflicts(platform):
    user, token = await platform.new_user()
    other = await platform.signup()
    taken = await platform.request("PUT", f"/users/{user['id']}", token=token, json={"email": other["email"]})
    assert taken.status == 409
    bad = await platform.request("PUT", f"/users/{user['id']}", token=token, json={"email": "nope"})
    assert bad.status == 400
    admin = await platform.admin_token()
    bad_status = await platform.request("PUT", f"/users/{user['id']}", token=admin,
                                        json={"accountStatus": "frozen"})
    assert bad_status.status == 400
    missing = await platform.request("PUT", "/users/999999", token=admin, json={"name": "x"})
    assert missing.status == 404


async def test_an_empty_update_changes_nothing_and_announces_nothing(platform, events):
    user, token = await platform.new_user()
    reply = await platform.request("PUT", f"/users/{user['id']}", token=token, json={})
    assert reply.status == 200 and reply.body["name"] == user["name"]
    marker, _ = await platform.new_user()  # a later event proves the relay had its chance
    await events.wait_for(USER_CREATED, id=marker["id"])
    assert events.of(USER_UPDATED, id=user["id"]) == []


async def test_owner_deletes_their_account(platform, events):
    user, token = await platform.new_user()
    reply = await platform.request("DELETE", f"/users/{user['id']}", token=token)
    assert reply.status == 200
    assert (await platform.get("/auth/session", token=token)).status == 401
    assert (await login_reply(platform, user["email"])).status == 401
    admin = await platform.admin_token()
    assert (await platform.get(f"/users/{user['id']}", token=admin)).status == 404
    deleted = await events.wait_for(USER_DELETED, id=user["id"])
    assert deleted.data.email == user["email"]
    # The email is free again.
    assert (await platform.post("/auth/signup", json={"name": "Back", "email": user["email"],
                                                      "password": PASSWORD})).status == 201


async def test_only_owner_or_admin_deletes(platform):
    victim, _ = await platform.new_user()
    _, attacker = await platform.new_user()
    assert (await platform.request("DELETE", f"/users/{victim['id']}", token=attacker)).status == 403
    assert (await platform.request("DELETE", f"/users/{victim['id']}")).status == 401
    admin = await platform.admin_token()
    assert (await platform.request("DELETE", f"/users/{victim['id']}", token=admin)).status == 200
    assert (await platform.request("DELETE", f"/users/{victim['id']}", token=admin)).status == 404


async def test_user_routes_answer_on_the_service_port_too(platform):
    user = await platform.signup()
    reply = await platform.post("/auth/login", service="user", json={"email": user["email"], "password": PASSWORD})
    assert reply.status == 200
    session = await platform.get("/auth/session", service="user", token=reply.body["token"])
    assert session.status == 200 and session.body["user"]["id"] == user["id"]


async def _nth_otp(events: UserEvents, address: str, n: int):
    found = events.of(PASSWORD_RESET_REQUESTED, email=address)
    return found[n - 1] if len(found) >= n else None


async def test_a_demoted_admin_loses_admin_rights_at_once(platform, events):
    admin = await platform.admin_token()
    address = email()
    created = await platform.post("/users", token=admin, json={"name": "Deputy", "email": address,
                                                               "password": PASSWORD, "role": "admin"})
    deputy = (await login_reply(platform, address)).body["token"]
    assert (await platform.get("/auth/users", token=deputy)).status == 200

    reply = await platform.request("PUT", f"/users/{created.body['id']}", token=admin, json={"role": "user"})
    assert reply.status == 200
    for service in ("gateway", "user"):  # the old token still claims "admin": it must not work
        assert (await platform.get("/auth/users", token=deputy, service=service)).status == 401
    fresh = (await login_reply(platform, address)).body["token"]
    assert (await platform.get("/auth/users", token=fresh)).status == 403
    assert (await platform.get("/auth/session", token=fresh)).status == 200
