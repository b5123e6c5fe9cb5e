"""Command handlers of the user service. Passwords arrive already hashed (routes hash off-actor)."""

from __future__ import annotations

from microcommerce import environment
from microcommerce.actors.service import ServiceActor, handles
from microcommerce.contracts import user as events
from microcommerce.contracts.events import iso_from_epoch, utc_now_iso
from microcommerce.contracts.user import GetRevocationSnapshot, RevocationSnapshot
from microcommerce.errors import BadRequest, Conflict, NotFound
from microcommerce.services.user import domain, store
from microcommerce.services.user.messages import (
    ChangePassword,
    CreateUser,
    Credentials,
    DeleteUser,
    EnsureAdmin,
    GetCredentials,
    GetCredentialsById,
    GetUser,
    ListUsers,
    RequestPasswordReset,
    ResetWithOtp,
    RevokeToken,
    TokenVersion,
    UpdateUser,
    UserView,
)
from microcommerce.storage import Executor, IntegrityError

#: Margin on top of the token lifetime when deciding which changes a snapshot still needs
#: (a login racing a change may sign a token a moment after it).
SNAPSHOT_MARGIN_S = 300


class UserActor(ServiceActor):
    @handles(CreateUser)
    async def create_user(self, cmd: CreateUser) -> UserView:
        try:
            async with self.db.transaction() as tx:
                if await store.by_email(tx, cmd.email):
                    raise Conflict("Email is already registered")
                user_id = await store.insert(tx, cmd.name, cmd.email, cmd.password_hash, cmd.role)
                row = await store.by_id(tx, user_id)
                view = store.to_view(row)
                await self.emit(tx, events.USER_CREATED, user_id, store.to_event(row))
        except IntegrityError:
            raise Conflict("Email is already registered") from None
        return view

    @handles(EnsureAdmin)
    async def ensure_admin(self, cmd: EnsureAdmin) -> bool:
        async with self.db.transaction() as tx:
            created, row = await ensure_admin(tx, cmd.name, cmd.email, cmd.password_hash)
            if row is not None:
                await self.emit(tx, events.USER_CREATED if created else events.USER_UPDATED, row["id"],
                                store.to_event(row))
        return created

    @handles(GetCredentials)
    async def get_credentials(self, cmd: GetCredentials) -> Credentials | None:
        row = await store.by_email(self.db, cmd.email)
        return store.to_credentials(row) if row else None

    @handles(GetCredentialsById)
    async def get_credentials_by_id(self, cmd: GetCredentialsById) -> Credentials:
        return store.to_credentials(await self._existing(self.db, cmd.id))

    @handles(GetUser)
    async def get_user(self, cmd: GetUser) -> UserView:
        return store.to_view(await self._existing(self.db, cmd.id))

    @handles(ListUsers)
    async def list_users(self, cmd: ListUsers) -> list[UserView]:
        return [store.to_view(row) for row in await store.list_users(self.db, cmd.limit, cmd.offset)]

    @handles(UpdateUser)
    async def update_user(self, cmd: UpdateUser) -> UserView:
        domain.check_update_allowed(cmd.actor_role, cmd.actor_id, cmd.id, cmd.role, cmd.account_status)
        changes = {"name": cmd.name, "email": cmd.email, "role": cmd.role,
                   "account_status": cmd.account_status}
        fields = {column: value for column, value in changes.items() if value is not None}
        try:
            async with self.db.transaction() as tx:
                before = await self._existing(tx, cmd.id)
                if cmd.email is not None:
                    other = await store.by_email(tx, cmd.email)
                    if other and int(other["id"]) != cmd.id:
                        raise Conflict("Email is already registered")
                if fields:
                    await store.update_fields(tx, cmd.id, fields)
                    if domain.changes_authority(before["role"], before["account_status"], cmd.role,
                                                cmd.account_status):
                        await store.bump_token_version(tx, cmd.id)
                row = await store.by_id(tx, cmd.id)
                view = store.to_view(row)
                if fields:
                    await self.emit(tx, events.USER_UPDATED, cmd.id, store.to_event(row))
        except IntegrityError:
            raise Conflict("Email is already registered") from None
        return view

    @handles(DeleteUser)
    async def delete_user(self, cmd: DeleteUser) -> None:
        domain.check_update_allowed(cmd.actor_role, cmd.actor_id, cmd.id, None, None)
        async with self.db.transaction() as tx:
            row = await self._existing(tx, cmd.id)
            await store.delete(tx, cmd.id)
            await self.emit(tx, events.USER_DELETED, cmd.id, events.UserDeleted(id=cmd.id, email=row["email"]))

    @handles(ChangePassword)
    async def change_password(self, cmd: ChangePassword) -> TokenVersion:
        async with self.db.transaction() as tx:
            await self._existing(tx, cmd.id)
            version = await store.set_password(tx, cmd.id, cmd.password_hash)
            await self.emit(tx, events.USER_PASSWORD_CHANGED, cmd.id,
                            events.PasswordChanged(id=cmd.id, tokenVersion=version))
        return TokenVersion(id=cmd.id, tokenVersion=version)

    @handles(RevokeToken)
    async def revoke_token(self, cmd: RevokeToken) -> None:
        """Logout; idempotent (a token logged out twice is announced once)."""
        async with self.db.transaction() as tx:
            if await store.revoke_token(tx, cmd.jti, cmd.user_id, cmd.exp, int(environment.now())):
                await self.emit(tx, events.USER_LOGGED_OUT, cmd.user_id,
                                events.LoggedOut(id=cmd.user_id, jti=cmd.jti, exp=cmd.exp))

    @handles(GetRevocationSnapshot)
    async def revocation_snapshot(self, cmd: GetRevocationSnapshot) -> RevocationSnapshot:
        """What every process needs to refuse revoked tokens, read from this service's database."""
        now = environment.now()
        since = iso_from_epoch(now - self.settings.jwt_ttl_s - SNAPSHOT_MARGIN_S)
        users = [events.UserRevocation(id=int(row["id"]), minTokenVersion=int(row["token_version"]),
                                       void=row["account_status"] != "active", role=row["role"],
                                       asOf=row["updated_at"])
                 for row in await store.users_with_revoked_tokens(self.db, since)]
        users += [events.UserRevocation(id=int(row["id"]), minTokenVersion=0, void=True, role=None,
                                        asOf=row["deleted_at"])
                  for row in await store.deleted_since(self.db, since)]
        tokens = [events.RevokedToken(jti=row["jti"], userId=int(row["user_id"]), exp=int(row["expires_at"]))
                  for row in await store.revoked_tokens(self.db, int(now))]
        return RevocationSnapshot(users=users, revokedTokens=tokens, takenAt=iso_from_epoch(now))

    @handles(RequestPasswordReset)
    async def request_password_reset(self, cmd: RequestPasswordReset) -> None:
        async with self.db.transaction() as tx:
            row = await store.by_email(tx, cmd.email)
            if row is None or row["account_status"] != "active":
                return  # same answer either way: no account enumeration
            user_id = int(row["id"])
            otp = domain.new_otp()
            expires_at = iso_from_epoch(environment.now() + domain.OTP_TTL_S)
            await store.replace_otp(tx, user_id, domain.hash_otp(otp, user_id, self.settings.jwt_secret),
                                    expires_at)
            await self.emit(tx, events.PASSWORD_RESET_REQUESTED, user_id, events.PasswordResetRequested(
                userId=user_id, email=row["email"], name=row["name"], otp=otp, expiresAt=expires_at))

    @handles(ResetWithOtp)
    async def reset_with_otp(self, cmd: ResetWithOtp) -> TokenVersion:
        invalid = BadRequest("Invalid or expired OTP")
        async with self.db.transaction() as tx:
            row = await store.by_email(tx, cmd.email)
            if row is None:
                raise invalid
            user_id = int(row["id"])
            otp = await store.live_otp(tx, user_id)
            if otp is None or otp["expires_at"] < utc_now_iso() or otp["attempts"] >= domain.OTP_MAX_ATTEMPTS:
                raise invalid
            if not domain.otp_matches(cmd.otp, user_id, self.settings.jwt_secret, otp["otp_hash"]):
                await store.count_otp_attempt(tx, int(otp["id"]))
                failed = True
            else:
                failed = False
                await store.use_otp(tx, int(otp["id"]))
                version = await store.set_password(tx, user_id, cmd.password_hash)
                await self.emit(tx, events.USER_PASSWORD_CHANGED, user_id,
                                events.PasswordChanged(id=user_id, tokenVersion=version))
        if failed:
            raise invalid
        return TokenVersion(id=user_id, tokenVersion=version)

    @staticmethod
    async def _existing(db: Executor, user_id: int) -> dict:
        row = await store.by_id(db, user_id)
        if row is None:
            raise NotFound(f"User {user_id} not found")
        return row


async def ensure_admin(tx: Executor, name: str, email: str, password_hash: str) -> tuple[bool, dict | None]:
    """Create the admin, or promote an existing account; (created, its row or None if unchanged)."""
    row = await store.by_email(tx, email)
    if row is None:
        user_id = await store.insert(tx, name, email, password_hash, "admin")
        return True, await store.by_id(tx, user_id)
    if row["role"] == "admin" and row["account_status"] == "active":
        return False, None
    user_id = int(row["id"])
    await store.update_fields(tx, user_id, {"role": "admin", "account_status": "active"})
    await store.bump_token_version(tx, user_id)
    return False, await store.by_id(tx, user_id)
