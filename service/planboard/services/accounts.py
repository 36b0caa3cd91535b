"""Accounts and sessions: register, log in, rotate, log out, reset, verify."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from redis.asyncio import Redis

from planboard.auth.passwords import hash_password, needs_rehash, password_problems, verify_password
from planboard.auth.tokens import (
    InvalidToken,
    issue_access_token,
    new_opaque_token,
    parse_opaque_token,
    secret_matches,
    verify_access_token,
)
from planboard.config import Settings
from planboard.domain.access import PAT_MAX_DAYS, expand_scopes
from planboard.domain.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from planboard.events import outbox
from planboard.events.envelope import Event
from planboard.services.mail import queue_mail
from planboard.services.near_cache import NearCache, announce, session_tag
from planboard.store import access_tokens, action_tokens, memberships, sessions, users, workspaces
from planboard.store.document import Document
from planboard.store.ids import new_id, utcnow

log = logging.getLogger(__name__)

REFRESH_PREFIX = "pbrt"
RESET_PREFIX = "pbrs"
VERIFY_PREFIX = "pbev"
PAT_PREFIX = "pbpat"
NEAR_SESSION_KEY = "live-session:"
NEAR_USER_KEY = "live-user:"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def to_dict(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }


@dataclass(frozen=True, slots=True)
class Authenticated:
    user_id: str
    kind: str  # "session" or "pat"
    token_id: str
    scopes: frozenset[str] | None


class Accounts:
    """Account use cases over MongoDB (state), Redis (announcing revocations to every
    process's near cache) and the outbox (mail)."""

    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Document],
        redis: Redis,
        *,
        near: NearCache | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        # Sessions found live (and users found to exist), dropped by a revocation's message
        # (services/near_cache.py): no database round trip per request.
        self.near = near

    # --- registration and verification -------------------------------------------------

    async def register(
        self, *, email: str, password: str, name: str, request_id: str | None
    ) -> Document:
        email = users.normalize_email(email)
        problems = password_problems(
            password, min_length=self.settings.password_min_length, email=email, name=name
        )
        if problems:
            raise ValidationFailed(
                [("password", f"password {p}") for p in problems], "weak password"
            )
        now = utcnow()
        user: Document = {
            "_id": new_id(),
            "email": email,
            "name": name.strip(),
            "password_hash": await hash_password(password),
            "email_verified": False,
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "token_count": 0,  # personal access tokens not revoked (store/quotas.py)
        }
        try:
            await users.insert(self.db, user)
        except DuplicateKeyError:
            raise Conflict("an account with this email already exists") from None
        await outbox.record(
            self.db,
            [
                Event(
                    type="user.registered",
                    key=str(user["_id"]),
                    workspace_id=None,
                    data={"user_id": user["_id"]},
                    request_id=request_id,
                )
            ],
        )
        await self.send_verification(user, request_id=request_id)
        return user

    async def send_verification(self, user: Document, *, request_id: str | None) -> None:
        token = await self._action_token(
            str(user["_id"]), "verify_email", VERIFY_PREFIX, self.settings.verify_token_ttl_s
        )
        await queue_mail(
            self.db,
            to=str(user["email"]),
            subject="Confirm your Planboard email address",
            text=(
                f"Hello {user['name']},\n\nConfirm your email address with this code:\n\n"
                f"{token}\n\n{self._link('verify-email', token)}"
                f"It expires in {self.settings.verify_token_ttl_s // 3600} hours.\n"
            ),
            kind="verify_email",
            key=str(user["_id"]),
            request_id=request_id,
        )

    async def verify_email(self, token: str) -> Document:
        record = await self._consume_action_token(token, "verify_email", VERIFY_PREFIX)
        user = await users.mark_verified(self.db, str(record["user_id"]), utcnow())
        if user is None:
            raise ValidationFailed([("token", "invalid or expired token")], "invalid token")
        return user

    # --- passwords ---------------------------------------------------------------------

    async def forgot_password(self, email: str, *, request_id: str | None) -> None:
        """Always the same answer to the caller; mail only to existing accounts."""
        user = await users.by_email(self.db, email)
        if user is None:
            return
        token = await self._action_token(
            str(user["_id"]), "reset_password", RESET_PREFIX, self.settings.reset_token_ttl_s
        )
        await queue_mail(
            self.db,
            to=str(user["email"]),
            subject="Reset your Planboard password",
            text=(
                f"Hello {user['name']},\n\nSomeone asked to reset your password. If it was you, "
                f"use this code:\n\n{token}\n\n{self._link('reset-password', token)}"
                f"It expires in {self.settings.reset_token_ttl_s // 60} minutes and works once. "
                "If it was not you, ignore this mail.\n"
            ),
            kind="reset_password",
            key=str(user["_id"]),
            request_id=request_id,
        )

    async def reset_password(self, token: str, password: str) -> None:
        parsed = parse_opaque_token(token, RESET_PREFIX)
        record = await action_tokens.get(self.db, parsed.id, "reset_password") if parsed else None
        user = await users.get(self.db, str(record["user_id"])) if record else None
        if user is not None:
            problems = password_problems(
                password,
                min_length=self.settings.password_min_length,
                email=str(user["email"]),
                name=str(user["name"]),
            )
            if problems:
                raise ValidationFailed(
                    [("password", f"password {p}") for p in problems], "weak password"
                )
        record = await self._consume_action_token(token, "reset_password", RESET_PREFIX)
        now = utcnow()
        user_id = str(record["user_id"])
        await users.set_password(self.db, user_id, await hash_password(password), now)
        for session_id in await sessions.open_sessions_of(self.db, user_id):
            await self._revoke(session_id, "password_reset", now)

    # --- sessions ------------------------------------------------------------------------

    async def login(
        self, *, email: str, password: str, user_agent: str, ip: str | None
    ) -> TokenPair:
        user = await users.by_email(self.db, email)
        stored = str(user["password_hash"]) if user else None
        if not await verify_password(stored, password) or user is None:
            raise Unauthorized("invalid email or password")
        now = utcnow()
        if stored and needs_rehash(stored):
            await users.set_password(self.db, str(user["_id"]), await hash_password(password), now)
        session_id = new_id()
        await sessions.create_session(
            self.db,
            {
                "_id": session_id,
                "user_id": str(user["_id"]),
                "created_at": now,
                "last_used_at": now,
                "revoked": False,
                "user_agent": user_agent[:300],
                "ip": ip,
            },
        )
        return await self._issue(str(user["_id"]), session_id, now)

    async def refresh(self, refresh_token: str) -> TokenPair:
        parsed = parse_opaque_token(refresh_token, REFRESH_PREFIX)
        record = await sessions.get_refresh(self.db, parsed.id) if parsed else None
        if (
            parsed is None
            or record is None
            or not secret_matches(parsed.secret, str(record["secret_hash"]))
        ):
            raise Unauthorized("invalid refresh token")
        now = utcnow()
        session_id = str(record["session_id"])
        user_id = record["user_id"]
        session = await sessions.get_session(self.db, session_id)
        if (
            session is None
            or session.get("revoked")
            or session.get("user_id") != user_id
            or not await users.exists(self.db, user_id)
        ):
            raise Unauthorized("this session has ended; log in again")
        if record.get("used") or not await sessions.claim_refresh(self.db, parsed.id, now):
            # A rotated-out token came back: it was copied. End the whole session.
            await self._revoke(session_id, "refresh_token_reuse", now)
            log.warning("refresh token reuse; session revoked", extra={"session_id": session_id})
            raise Unauthorized("refresh token already used; the session has been revoked")
        created_at, expires_at = record["created_at"], record["expires_at"]
        assert isinstance(created_at, datetime)
        assert isinstance(expires_at, datetime)
        # the configured lifetime caps a stored expiry too (a shortened one applies at once)
        lifetime = timedelta(seconds=self.settings.refresh_token_ttl_s)
        if min(expires_at, created_at + lifetime) <= now:
            raise Unauthorized("refresh token expired; log in again")
        await sessions.touch_session(self.db, session_id, now)
        return await self._issue(user_id, session_id, now)

    async def logout(
        self, *, session_id: str | None, refresh_token: str | None, user_id: str
    ) -> None:
        """End the caller's session (named by the access token or a refresh token)."""
        now = utcnow()
        if refresh_token:
            parsed = parse_opaque_token(refresh_token, REFRESH_PREFIX)
            record = await sessions.get_refresh(self.db, parsed.id) if parsed else None
            if (
                parsed is None
                or record is None
                or record.get("user_id") != user_id
                or not secret_matches(parsed.secret, str(record["secret_hash"]))
            ):
                raise ValidationFailed([("refresh_token", "not a refresh token of yours")])
            await self._revoke(str(record["session_id"]), "logout", now)
        if session_id:
            await self._revoke(session_id, "logout", now)

    # --- authentication of requests ------------------------------------------------------

    async def authenticate(self, bearer: str) -> Authenticated:
        """Resolve an ``Authorization: Bearer`` credential (JWT or PAT) or raise Unauthorized."""
        if bearer.startswith(PAT_PREFIX + "_"):
            return await self._authenticate_pat(bearer)
        try:
            claims = verify_access_token(
                bearer,
                secrets_=(self.settings.secret_key, *self.settings.previous_secret_keys),
                issuer=self.settings.jwt_issuer,
                audience=self.settings.jwt_audience,
                max_ttl_s=self.settings.access_token_ttl_s,
            )
        except InvalidToken as exc:
            raise Unauthorized(str(exc)) from None
        if not await self._session_live(claims.session_id, claims.user_id):
            raise Unauthorized("this session has ended; log in again")
        return Authenticated(claims.user_id, "session", claims.session_id, None)

    async def _authenticate_pat(self, bearer: str) -> Authenticated:
        parsed = parse_opaque_token(bearer, PAT_PREFIX)
        record = await access_tokens.get(self.db, parsed.id) if parsed else None
        if (
            parsed is None
            or record is None
            or not secret_matches(parsed.secret, str(record["secret_hash"]))
        ):
            raise Unauthorized("invalid access token")
        now = utcnow()
        created_at, expires_at = record["created_at"], record["expires_at"]
        assert isinstance(created_at, datetime)
        assert isinstance(expires_at, datetime)
        if record.get("revoked"):
            raise Unauthorized("this access token was revoked")
        if expires_at <= now:
            raise Unauthorized("this access token has expired")
        if expires_at - created_at > timedelta(days=PAT_MAX_DAYS):
            # not one this service issued: refused, whatever wrote it
            raise Unauthorized("this access token lives longer than allowed")
        user_id = str(record["user_id"])
        if not await self._user_exists(user_id):
            raise Unauthorized("this access token's user no longer exists")
        await access_tokens.touch(self.db, parsed.id, now)
        scopes = record.get("scopes") or []
        assert isinstance(scopes, list)
        return Authenticated(user_id, "pat", parsed.id, expand_scopes(frozenset(map(str, scopes))))

    async def _session_live(self, session_id: str, user_id: str) -> bool:
        """Whether the access token's session still exists, is not revoked and belongs to
        its user, who still exists: MongoDB answers (it is the source of truth, and a
        session or user deleted there was never announced), and the near cache remembers
        a live session until its revocation is announced or its entry's TTL passes, so the
        cached path costs no round trip."""
        near, stamp = self.near, -1
        if near is not None and near.live:
            if near.get(NEAR_SESSION_KEY + session_id) == user_id:
                return True
            stamp = near.stamp()  # before MongoDB is read
        session, user = await asyncio.gather(
            sessions.get_session(self.db, session_id), users.exists(self.db, user_id)
        )
        live = (
            session is not None
            and not session.get("revoked")
            and session.get("user_id") == user_id
            and user
        )
        if live and near is not None:
            tags = (session_tag(session_id),)
            near.put(NEAR_SESSION_KEY + session_id, user_id, tags, stamp=stamp, size=96)
        return live

    async def _user_exists(self, user_id: str) -> bool:
        """A personal access token's user exists (near-cached like a live session)."""
        near, stamp = self.near, -1
        if near is not None and near.live:
            if near.get(NEAR_USER_KEY + user_id) is not None:
                return True
            stamp = near.stamp()
        found = await users.exists(self.db, user_id)
        if found and near is not None:
            near.put(NEAR_USER_KEY + user_id, True, (), stamp=stamp, size=96)
        return found

    # --- helpers -------------------------------------------------------------------------

    async def _issue(self, user_id: str, session_id: str, now: datetime) -> TokenPair:
        access, _ = issue_access_token(
            secret=self.settings.secret_key,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            user_id=user_id,
            session_id=session_id,
            ttl_s=self.settings.access_token_ttl_s,
            now=now.timestamp(),
        )
        refresh = new_opaque_token(REFRESH_PREFIX, new_id())
        await sessions.insert_refresh(
            self.db,
            {
                "_id": refresh.id,
                "session_id": session_id,
                "user_id": user_id,
                "secret_hash": refresh.secret_hash,
                "created_at": now,
                "expires_at": now + timedelta(seconds=self.settings.refresh_token_ttl_s),
                "used": False,
            },
        )
        return TokenPair(access, str(refresh), self.settings.access_token_ttl_s)

    async def _revoke(self, session_id: str, reason: str, now: datetime) -> None:
        """Mark the session revoked in MongoDB (which every check reads on a near-cache
        miss), then drop it from every process's near cache: this one at once, the others
        when the message arrives (services/near_cache.py ``announce``)."""
        await sessions.revoke_session(self.db, session_id, reason, now)
        await announce(self.redis, self.near, (session_tag(session_id),))

    async def _action_token(self, user_id: str, kind: str, prefix: str, ttl_s: int) -> str:
        now = utcnow()
        await action_tokens.retire_unused(self.db, user_id, kind, now)
        token = new_opaque_token(prefix, new_id())
        await action_tokens.insert(
            self.db,
            {
                "_id": token.id,
                "kind": kind,
                "user_id": user_id,
                "secret_hash": token.secret_hash,
                "created_at": now,
                "expires_at": now + timedelta(seconds=ttl_s),
                "used": False,
            },
        )
        return str(token)

    async def _consume_action_token(self, token: str, kind: str, prefix: str) -> Document:
        parsed = parse_opaque_token(token, prefix)
        record = await action_tokens.get(self.db, parsed.id, kind) if parsed else None
        if (
            parsed is None
            or record is None
            or not secret_matches(parsed.secret, str(record["secret_hash"]))
            or not await action_tokens.consume(self.db, parsed.id, utcnow())
        ):
            raise ValidationFailed([("token", "invalid, used or expired token")], "invalid token")
        return record

    def _link(self, action: str, token: str) -> str:
        base = self.settings.public_url.rstrip("/")
        return f"{base}/{action}?token={token}\n\n" if base else ""


# --------------------------------------------------------------------------- reads (API)


async def user_of(db: AsyncDatabase[Document], user_id: str) -> Document:
    """The user (404 when gone)."""
    user = await users.get(db, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def workspaces_of_user(db: AsyncDatabase[Document], user_id: str) -> list[dict[str, str]]:
    """``{workspace_id, name, role}`` of each workspace the user belongs to, oldest first."""
    mine = await memberships.of_user(db, user_id)
    names = await workspaces.many(db, [m["workspace_id"] for m in mine])
    return [
        {
            "workspace_id": m["workspace_id"],
            "name": str(names[m["workspace_id"]]["name"]),
            "role": m["role"],
        }
        for m in mine
        if m["workspace_id"] in names
    ]
