"""The dev outbox holds every user's reset codes: only an admin reads it, even on loopback.

It used to answer anyone: `POST /auth/forgot-password` for the admin's email, then an anonymous
`GET /notifications/dev/outbox?to=<admin>` showed the code that resets the admin's password.
"""

from __future__ import annotations

import re

from mc_testkit import ADMIN_EMAIL, eventually

SERVICES = ["gateway", "user", "notification"]


async def test_nobody_but_an_admin_reads_the_admin_reset_code(make_platform):
    platform = await make_platform(SERVICES)
    _, user_token = await platform.new_user()
    admin = await platform.admin_token()
    assert (await platform.post("/auth/forgot-password", json={"email": ADMIN_EMAIL})).status == 200

    async def reset_code():
        reply = await platform.get(f"/notifications/dev/outbox?to={ADMIN_EMAIL}", token=admin)
        assert reply.status == 200, reply
        mail = next((m for m in reply.body["messages"] if m["subject"] == "Your password reset code"), None)
        return re.search(r"\b(\d{6})\b", mail["body"]).group(1) if mail else None

    otp = await eventually(reset_code)
    path = f"/notifications/dev/outbox?to={ADMIN_EMAIL}"
    # Through the gateway and straight on the notification port (127.0.0.1): same answer.
    for service in ("gateway", "notification"):
        anonymous = await platform.get(path, service=service)
        shopper = await platform.get(path, service=service, token=user_token)
        assert (anonymous.status, anonymous.body) == (401, {"message": "Authentication required"})
        assert (shopper.status, shopper.body) == (403, {"message": "Requires role: admin"})
        for reply in (anonymous, shopper):
            assert otp not in str(reply.body) and ADMIN_EMAIL not in str(reply.body)
    # The code still works for whoever really holds the mailbox.
    reply = await platform.post("/auth/reset-password/otp",
                                json={"email": ADMIN_EMAIL, "otp": otp, "newPassword": "new-admin-pass"})
    assert reply.status == 200, reply
