"""Workspaces, members and invitations."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from planboard.auth.tokens import new_opaque_token, parse_opaque_token, secret_matches
from planboard.config import Settings
from planboard.domain.access import Role, can_assign
from planboard.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from planboard.events import outbox
from planboard.events.envelope import Event
from planboard.services import scheduling
from planboard.services.access import Access
from planboard.services.activity import Retry, with_retries
from planboard.services.context import ServiceContext
from planboard.services.mail import queue_mail
from planboard.store import invitations, memberships, quotas, users, workspaces
from planboard.store.document import Document
from planboard.store.documents import MembershipDoc
from planboard.store.ids import new_id, utcnow

INVITATION_PREFIX = "pbinv"
MAX_PENDING_INVITATIONS = 200


def _event(
    kind: str, workspace_id: str, actor: str | None, request_id: str | None, **data: object
) -> Event:
    return Event(
        type=kind,
        key=workspace_id,
        workspace_id=workspace_id,
        data={"workspace_id": workspace_id, **data},
        actor_id=actor,
        request_id=request_id,
    )


async def create_workspace(
    db: AsyncDatabase[Document], *, name: str, owner_id: str, request_id: str | None
) -> Document:
    workspace = await workspaces.create(db, name, created_by=owner_id)
    await memberships.insert(
        db,
        {
            "_id": new_id(),
            "workspace_id": str(workspace["_id"]),
            "user_id": owner_id,
            "role": Role.OWNER.value,
            "created_at": cast(datetime, workspace["created_at"]),
        },
    )
    await outbox.record(
        db, [_event("workspace.created", str(workspace["_id"]), owner_id, request_id)]
    )
    return workspace


async def update_workspace(
    db: AsyncDatabase[Document],
    access: Access,
    values: Mapping[str, Any],
    request_id: str | None,
) -> Document:
    """Rename and/or set the working calendar (``calendar``: null for the default); the
    calendar is checked by the domain (422 naming ``calendar.<field>``)."""
    stored: Document = {}
    if "name" in values:
        stored["name"] = values["name"]
    if "calendar" in values:
        given = values["calendar"]
        stored["calendar"] = scheduling.calendar_doc(given) if given is not None else None
    updated = await workspaces.update(db, access.workspace_id, stored, utcnow())
    if updated is None:
        raise NotFound("workspace not found")
    await outbox.record(
        db,
        [
            _event(
                "workspace.updated",
                access.workspace_id,
                access.user_id,
                request_id,
                name=updated["name"],
                fields=sorted(stored),
            )
        ],
    )
    return updated


async def delete_workspace(
    db: AsyncDatabase[Document], access: Access, request_id: str | None
) -> None:
    await workspaces.delete_cascade(db, access.workspace_id)
    await outbox.record(
        db, [_event("workspace.deleted", access.workspace_id, access.user_id, request_id)]
    )


async def change_role(
    ctx: ServiceContext,
    access: Access,
    user_id: str,
    role: Role,
    request_id: str | None,
) -> None:
    """Give a member another role. The last owner cannot stop being one: the workspace's
    ``owner_count`` is moved in the same conditional write that the rule needs
    (store/quotas.py), so two owners demoting each other at once never leave none."""
    db = ctx.db

    async def attempt() -> None:
        membership = await memberships.get(db, access.workspace_id, user_id)
        if membership is None:
            raise NotFound("member not found")
        current = Role(membership["role"])
        if not can_assign(access.role, current, role):
            raise Forbidden(
                f"a {access.role.value} cannot change a {current.value} to {role.value}"
            )
        event = _event(
            "workspace.member_updated",
            access.workspace_id,
            access.user_id,
            request_id,
            user_id=user_id,
            role=role.value,
        )
        async with ctx.write() as unit:
            session = unit.session
            losing_owner = current is Role.OWNER and role is not Role.OWNER
            if losing_owner:
                await _uncount_an_owner(db, access.workspace_id, session)
            changed = await memberships.set_role(
                db, access.workspace_id, user_id, role.value, current=current.value, session=session
            )
            if not changed:  # changed or removed meanwhile: decide again
                if losing_owner and session is None:  # no transaction to roll it back
                    await quotas.WORKSPACE_OWNERS.add(db, access.workspace_id)
                raise Retry
            if role is Role.OWNER and current is not Role.OWNER:
                await quotas.WORKSPACE_OWNERS.add(db, access.workspace_id, session=session)
            await outbox.record(db, [event], session=session)

    await with_retries(attempt)


async def remove_member(
    ctx: ServiceContext,
    access: Access,
    user_id: str,
    request_id: str | None,
) -> None:
    """Remove a member (or leave); the last owner cannot (see :func:`change_role`)."""
    db = ctx.db

    async def attempt() -> None:
        membership = await memberships.get(db, access.workspace_id, user_id)
        if membership is None:
            raise NotFound("member not found")
        current = Role(membership["role"])
        leaving = user_id == access.user_id
        if not leaving and not can_assign(access.role, current, Role.VIEWER):
            raise Forbidden(f"a {access.role.value} cannot remove a {current.value}")
        event = _event(
            "workspace.member_removed",
            access.workspace_id,
            access.user_id,
            request_id,
            user_id=user_id,
        )
        async with ctx.write() as unit:
            session = unit.session
            if current is Role.OWNER:
                await _uncount_an_owner(db, access.workspace_id, session)
            removed = await memberships.remove(
                db, access.workspace_id, user_id, current=current.value, session=session
            )
            if not removed:
                if current is Role.OWNER and session is None:
                    await quotas.WORKSPACE_OWNERS.add(db, access.workspace_id)
                raise Retry
            await outbox.record(db, [event], session=session)

    await with_retries(attempt)


async def _uncount_an_owner(
    db: AsyncDatabase[Document], workspace_id: str, session: AsyncClientSession | None
) -> None:
    """Before a membership stops being an owner: refuse if it is the last one."""
    if not await quotas.WORKSPACE_OWNERS.take_unless_last(db, workspace_id, session=session):
        raise Conflict("a workspace needs at least one owner; make someone else owner first")


async def invite(
    db: AsyncDatabase[Document],
    settings: Settings,
    access: Access,
    *,
    email: str,
    role: Role,
    request_id: str | None,
) -> Document:
    email = users.normalize_email(email)
    if not can_assign(access.role, None, role):
        raise Forbidden(f"a {access.role.value} cannot invite someone as {role.value}")
    existing = await users.by_email(db, email)
    if existing and await memberships.get(db, access.workspace_id, str(existing["_id"])):
        raise Conflict("this person is already a member")
    pending = [
        i
        for i in await invitations.of_workspace(db, access.workspace_id)
        if i["status"] == "pending"
    ]
    if any(i["email"] == email for i in pending):
        raise Conflict("this person already has a pending invitation")
    workspace = await workspaces.get(db, access.workspace_id)
    if workspace is None:
        raise NotFound("workspace not found")
    now = utcnow()
    token = new_opaque_token(INVITATION_PREFIX, new_id())
    invitation: Document = {
        "_id": token.id,
        "workspace_id": access.workspace_id,
        "email": email,
        "role": role.value,
        "secret_hash": token.secret_hash,
        "invited_by": access.user_id,
        "status": "pending",
        "created_at": now,
        "updated_at": now,
        "expires_at": now + timedelta(seconds=settings.invitation_ttl_s),
    }
    too_many = ValidationFailed(
        [("email", f"at most {MAX_PENDING_INVITATIONS} pending invitations per workspace")]
    )
    async with quotas.held(
        db,
        quotas.WORKSPACE_INVITATIONS,
        access.workspace_id,
        limit=MAX_PENDING_INVITATIONS,
        refusal=too_many,
    ):
        await invitations.insert(db, invitation)
    base = settings.public_url.rstrip("/")
    link = f"{base}/invitations/accept?token={token}\n\n" if base else ""
    await queue_mail(
        db,
        to=email,
        subject=f"You are invited to {workspace['name']} on Planboard",
        text=(
            f"You have been invited to the workspace {workspace['name']} as {role.value}.\n\n"
            f"Accept with this code (log in or register with {email} first):\n\n{token}\n\n{link}"
            f"It expires in {settings.invitation_ttl_s // 86400} days.\n"
        ),
        kind="invitation",
        key=access.workspace_id,
        workspace_id=access.workspace_id,
        request_id=request_id,
    )
    await outbox.record(
        db,
        [
            _event(
                "workspace.invitation_created",
                access.workspace_id,
                access.user_id,
                request_id,
                invitation_id=token.id,
                role=role.value,
            )
        ],
    )
    invitation.pop("secret_hash")
    return invitation


async def revoke_invitation(
    db: AsyncDatabase[Document], access: Access, invitation_id: str
) -> None:
    invitation = await invitations.get(db, invitation_id)
    if invitation is None or invitation["workspace_id"] != access.workspace_id:
        raise NotFound("invitation not found")
    if not await invitations.transition(db, invitation_id, "revoked", utcnow()):
        raise Conflict(f"the invitation is already {invitation['status']}")
    await quotas.WORKSPACE_INVITATIONS.give_back(db, access.workspace_id)


async def accept_invitation(
    db: AsyncDatabase[Document], *, token: str, user_id: str, request_id: str | None
) -> Document:
    parsed = parse_opaque_token(token, INVITATION_PREFIX)
    invitation = await invitations.get(db, parsed.id) if parsed else None
    user = await users.get(db, user_id)
    invalid = ValidationFailed(
        [("token", "invalid, used or expired invitation")], "invalid invitation"
    )
    if parsed is None or invitation is None or user is None:
        raise invalid
    if not secret_matches(parsed.secret, str(invitation["secret_hash"])):
        raise invalid
    expires_at = invitation["expires_at"]
    assert isinstance(expires_at, datetime)
    if invitation["status"] != "pending" or expires_at <= utcnow():
        raise invalid
    if invitation["email"] != user["email"]:
        raise Forbidden("this invitation was sent to another email address")
    now = utcnow()
    if not await invitations.transition(db, parsed.id, "accepted", now, accepted_by=user_id):
        raise invalid
    workspace_id = str(invitation["workspace_id"])
    await quotas.WORKSPACE_INVITATIONS.give_back(db, workspace_id)
    try:
        await memberships.insert(
            db,
            {
                "_id": new_id(),
                "workspace_id": workspace_id,
                "user_id": user_id,
                "role": str(invitation["role"]),
                "created_at": now,
            },
        )
    except DuplicateKeyError:
        raise Conflict("you are already a member of this workspace") from None
    if invitation["role"] == Role.OWNER.value:  # counted once it is one (store/quotas.py)
        await quotas.WORKSPACE_OWNERS.add(db, workspace_id)
    await outbox.record(
        db,
        [
            _event(
                "workspace.member_added",
                workspace_id,
                user_id,
                request_id,
                user_id=user_id,
                role=invitation["role"],
            )
        ],
    )
    return {"workspace_id": workspace_id, "role": invitation["role"]}


# --------------------------------------------------------------------------- reads (API)


async def page_of_user(
    db: AsyncDatabase[Document], user_id: str, *, after: str | None, limit: int
) -> tuple[list[tuple[Document, str]], MembershipDoc | None, bool]:
    """The user's workspaces with their role, by membership id after ``after``: the page,
    its last membership (the next page's position) and whether more follow."""
    mine = [m for m in await memberships.of_user(db, user_id) if after is None or m["_id"] > after]
    mine.sort(key=lambda m: m["_id"])
    page = mine[:limit]
    found = await workspaces.many(db, [m["workspace_id"] for m in page])
    items = [(found[m["workspace_id"]], m["role"]) for m in page if m["workspace_id"] in found]
    return items, (page[-1] if page else None), len(mine) > len(page)


async def workspace_of(db: AsyncDatabase[Document], access: Access) -> Document:
    workspace = await workspaces.get(db, access.workspace_id)
    if workspace is None:
        raise NotFound("workspace not found")
    return workspace


async def members_of(db: AsyncDatabase[Document], access: Access) -> list[dict[str, object]]:
    """``{user_id, name, email, role, joined_at}`` of each member, oldest first."""
    members = await memberships.of_workspace(db, access.workspace_id)
    people = await users.many(db, [m["user_id"] for m in members])
    return [
        {
            "user_id": m["user_id"],
            "name": people[m["user_id"]]["name"],
            "email": people[m["user_id"]]["email"],
            "role": m["role"],
            "joined_at": m.get("created_at"),
        }
        for m in members
        if m["user_id"] in people
    ]


async def invitations_of(db: AsyncDatabase[Document], access: Access) -> list[Document]:
    return await invitations.of_workspace(db, access.workspace_id)
