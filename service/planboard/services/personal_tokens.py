"""Personal access tokens: created by a logged-in user, shown once, stored hashed."""

from __future__ import annotations

from datetime import timedelta

from pymongo.asynchronous.database import AsyncDatabase

from planboard.auth.tokens import new_opaque_token
from planboard.domain.access import SCOPES
from planboard.domain.errors import Forbidden, NotFound, ValidationFailed
from planboard.services.accounts import PAT_PREFIX
from planboard.store import access_tokens, quotas
from planboard.store.document import Document
from planboard.store.ids import new_id, utcnow

MAX_TOKENS_PER_USER = 50


async def create_token(
    db: AsyncDatabase[Document],
    *,
    user_id: str,
    caller_kind: str,
    name: str,
    scopes: list[str],
    expires_in_days: int,
) -> tuple[Document, str]:
    """Returns the stored record (without secret) and the token, which is never shown again."""
    if caller_kind != "session":
        raise Forbidden("personal access tokens can only be created from a login session")
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise ValidationFailed([("scopes", f"unknown scope(s): {', '.join(unknown)}")])
    now = utcnow()
    token = new_opaque_token(PAT_PREFIX, new_id())
    record: Document = {
        "_id": token.id,
        "user_id": user_id,
        "name": name,
        "scopes": sorted(set(scopes)),
        "secret_hash": token.secret_hash,
        "created_at": now,
        "expires_at": now + timedelta(days=expires_in_days),
        "last_used_at": None,
        "used": False,
        "revoked": False,
    }
    # Not revoked tokens are counted on the user (store/quotas.py): the limit holds under
    # concurrent creates too.
    too_many = ValidationFailed(
        [("name", f"at most {MAX_TOKENS_PER_USER} active tokens per user; revoke one first")]
    )
    async with quotas.held(
        db, quotas.USER_TOKENS, user_id, limit=MAX_TOKENS_PER_USER, refusal=too_many
    ):
        await access_tokens.insert(db, record)
    record.pop("secret_hash")
    return record, str(token)


async def revoke_token(db: AsyncDatabase[Document], user_id: str, token_id: str) -> None:
    if not await access_tokens.revoke(db, user_id, token_id, utcnow()):
        raise NotFound("token not found")
    await quotas.USER_TOKENS.give_back(db, user_id)


async def tokens_of(db: AsyncDatabase[Document], user_id: str) -> list[Document]:
    """The user's personal access tokens (records only: secrets are never stored)."""
    return await access_tokens.of_user(db, user_id)
