"""SQL of the user service (its own database only)."""

from __future__ import annotations

from typing import Any

from microcommerce.contracts import user as events
from microcommerce.contracts.events import utc_now_iso
from microcommerce.services.user.messages import Credentials, UserView
from microcommerce.storage import Executor

_COLUMNS = "id, name, email, role, account_status, token_version, password_hash, created_at, updated_at"


def to_view(row: dict[str, Any]) -> UserView:
    return UserView(id=int(row["id"]), name=row["name"], email=row["email"], role=row["role"],
                    accountStatus=row["account_status"], createdAt=row["created_at"],
                    updatedAt=row["updated_at"])


def to_event(row: dict[str, Any]) -> events.UserData:
    return events.UserData(id=int(row["id"]), name=row["name"], email=row["email"], role=row["role"],
                           accountStatus=row["account_status"], tokenVersion=int(row["token_version"]))


def to_credentials(row: dict[str, Any]) -> Credentials:
    return Credentials(user=to_view(row), passwordHash=row["password_hash"],
                       tokenVersion=int(row["token_version"]))


async def by_email(db: Executor, email: str) -> dict[str, Any] | None:
    return await db.fetch_one(f"SELECT {_COLUMNS} FROM users WHERE email = ?", email)


async def by_id(db: Executor, user_id: int) -> dict[str, Any] | None:
    return await db.fetch_one(f"SELECT {_COLUMNS} FROM users WHERE id = ?", user_id)


async def insert(tx: Executor, name: str, email: str, password_hash: str, role: str) -> int:
    now = utc_now_iso()
    result = await tx.execute(
        "INSERT INTO users (name, email, password_hash, role, account_status, token_version, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, 'active', 0, ?, ?)",
        name, email, password_hash, role, now, now,
    )
    assert result.lastrowid is not None
    return result.lastrowid


async def list_users(db: Executor, limit: int, offset: int) -> list[dict[str, Any]]:
    return await db.fetch_all(f"SELECT {_COLUMNS} FROM users ORDER BY id LIMIT ? OFFSET ?", limit, offset)


async def update_fields(tx: Executor, user_id: int, fields: dict[str, Any]) -> None:
    sets = ", ".join(f"{column} = ?" for column in fields)
    await tx.execute(f"UPDATE users SET {sets}, updated_at = ? WHERE id = ?",
                     *fields.values(), utc_now_iso(), user_id)


async def bump_token_version(tx: Executor, user_id: int) -> None:
    """Tokens issued so far stop working (their role or account status is no longer the user's)."""
    await tx.execute("UPDATE users SET token_version = token_version + 1 WHERE id = ?", user_id)


async def set_password(tx: Executor, user_id: int, password_hash: str) -> int:
    """Store the new hash and bump the token version (older tokens stop working); returns it."""
    await tx.execute(
        "UPDATE users SET password_hash = ?, token_version = token_version + 1, updated_at = ? WHERE id = ?",
        password_hash, utc_now_iso(), user_id,
    )
    row = await tx.fetch_one("SELECT token_version FROM users WHERE id = ?", user_id)
    assert row is not None
    return int(row["token_version"])


async def delete(tx: Executor, user_id: int) -> None:
    """Delete the user, leaving a tombstone: the user's tokens stay void after any restart."""
    await tx.execute("DELETE FROM password_reset_otps WHERE user_id = ?", user_id)
    await tx.execute("DELETE FROM users WHERE id = ?", user_id)
    await tx.execute("DELETE FROM deleted_users WHERE id = ?", user_id)
    await tx.execute("INSERT INTO deleted_users (id, deleted_at) VALUES (?, ?)", user_id, utc_now_iso())


async def replace_otp(tx: Executor, user_id: int, otp_hash: str, expires_at: str) -> None:
    """One live code per user: asking again voids the previous one."""
    now = utc_now_iso()
    await tx.execute("UPDATE password_reset_otps SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
                     now, user_id)
    await tx.execute(
        "INSERT INTO password_reset_otps (user_id, otp_hash, expires_at, created_at) VALUES (?, ?, ?, ?)",
        user_id, otp_hash, expires_at, now,
    )


async def live_otp(tx: Executor, user_id: int) -> dict[str, Any] | None:
    return await tx.fetch_one(
        "SELECT id, otp_hash, expires_at, attempts FROM password_reset_otps "
        "WHERE user_id = ? AND used_at IS NULL ORDER BY id DESC LIMIT 1",
        user_id,
    )


async def count_otp_attempt(tx: Executor, otp_id: int) -> None:
    await tx.execute("UPDATE password_reset_otps SET attempts = attempts + 1 WHERE id = ?", otp_id)


async def use_otp(tx: Executor, otp_id: int) -> None:
    await tx.execute("UPDATE password_reset_otps SET used_at = ? WHERE id = ?", utc_now_iso(), otp_id)


# -- token revocation ----------------------------------------------------------------------------

async def revoke_token(tx: Executor, jti: str, user_id: int, expires_at: int, now: int) -> bool:
    """Remember a logged-out token until it expires; False if it already was. Drops expired ones."""
    await tx.execute("DELETE FROM revoked_tokens WHERE expires_at <= ?", now)
    if await tx.fetch_one("SELECT jti FROM revoked_tokens WHERE jti = ?", jti):
        return False
    await tx.execute("INSERT INTO revoked_tokens (jti, user_id, expires_at, revoked_at) VALUES (?, ?, ?, ?)",
                     jti, user_id, expires_at, utc_now_iso())
    return True


async def revoked_tokens(db: Executor, now: int) -> list[dict[str, Any]]:
    return await db.fetch_all(
        "SELECT jti, user_id, expires_at FROM revoked_tokens WHERE expires_at > ? ORDER BY expires_at", now)


async def users_with_revoked_tokens(db: Executor, since: str) -> list[dict[str, Any]]:
    """Users changed since `since` whose older tokens are not good: older version or blocked.

    A change of role or account status bumps the token version, so `token_version > 0` covers them.
    """
    return await db.fetch_all(
        "SELECT id, role, account_status, token_version, updated_at FROM users "
        "WHERE updated_at >= ? AND (token_version > 0 OR account_status <> 'active') ORDER BY id",
        since,
    )


async def deleted_since(db: Executor, since: str) -> list[dict[str, Any]]:
    return await db.fetch_all("SELECT id, deleted_at FROM deleted_users WHERE deleted_at >= ? ORDER BY id", since)
