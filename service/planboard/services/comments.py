"""Comments on tasks, with ``@mentions`` resolved to workspace members.

A mention is ``@email`` (exact, case-insensitive), ``@"Full Name"``, ``@FullName``
(the name without spaces) or ``@First`` (a first name that only one member has);
only members of the task's workspace can be mentioned. Events carry the mentioned
user ids so the notifications worker can tell them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.access import Role
from planboard.domain.errors import Forbidden, NotFound, VersionMismatch
from planboard.services.access import Access, Caller, authorize
from planboard.services.activity import Actor, entry, event, record_change
from planboard.services.context import ServiceContext
from planboard.services.projects import check_id, check_version
from planboard.store import comments, memberships, projects, tasks, users
from planboard.store.document import Document
from planboard.store.documents import ProjectDoc, TaskDoc
from planboard.store.ids import new_id, utcnow

MENTION_RE = re.compile(
    r'(?<![\w@])@(?:"(?P<quoted>[^"\n]{1,100})"'
    r"|(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    r"|(?P<handle>[^\W_][\w.-]{0,99}))"
)
MAX_MENTIONS = 50


def _squash(name: str) -> str:
    return "".join(name.split()).casefold()


async def mentions_in(db: AsyncDatabase[Document], workspace_id: str, body: str) -> list[str]:
    """User ids of the members mentioned in ``body``, in order of first mention."""
    matches = list(MENTION_RE.finditer(body))
    if not matches:
        return []
    member_ids = [m["user_id"] for m in await memberships.of_workspace(db, workspace_id)]
    people = await users.many(db, member_ids)
    by_email: dict[str, str] = {}
    by_name: dict[str, set[str]] = {}
    by_first: dict[str, set[str]] = {}
    for user_id, person in people.items():
        by_email[str(person["email"]).casefold()] = user_id
        name = str(person.get("name") or "")
        by_name.setdefault(_squash(name), set()).add(user_id)
        if name.split():
            by_first.setdefault(name.split()[0].casefold(), set()).add(user_id)
    found: list[str] = []
    for match in matches:
        mentioned: str | None = None
        if match["email"]:
            mentioned = by_email.get(match["email"].casefold())
        else:
            handle = _squash(match["quoted"] or match["handle"])
            named = by_name.get(handle) or by_first.get(handle) or set()
            mentioned = next(iter(named)) if len(named) == 1 else None
        if mentioned is not None and mentioned not in found:
            found.append(mentioned)
    return found[:MAX_MENTIONS]


async def comment_for(
    db: AsyncDatabase[Document],
    caller: Caller,
    comment_id: str,
    *,
    scope: str,
    role: Role = Role.VIEWER,
) -> tuple[Document, TaskDoc, ProjectDoc, Access]:
    """A comment, its task and project, and the caller's access (404 across workspaces)."""
    caller.require_scope(scope)
    check_id(comment_id, "comment_id")
    comment = await comments.get(db, comment_id)
    if comment is None:
        raise NotFound("comment not found")
    task = await tasks.get(db, str(comment["task_id"]))
    project = await projects.get(db, str(comment["project_id"]))
    if task is None or project is None:
        raise NotFound("comment not found")
    access = await authorize(
        db, caller, project["workspace_id"], scope=scope, role=role, what="comment"
    )
    return comment, task, project, access


def require_author_or_admin(comment: Mapping[str, object], access: Access) -> None:
    if comment.get("author_id") == access.user_id or access.role.at_least(Role.ADMIN):
        return
    raise Forbidden("only the author or a workspace admin may change this comment")


async def create_comment(
    ctx: ServiceContext,
    task: TaskDoc,
    project: ProjectDoc,
    actor: Actor,
    body: str,
) -> Document:
    db = ctx.db
    now = utcnow()
    mentioned = await mentions_in(db, project["workspace_id"], body)
    comment: Document = {
        "_id": new_id(),
        "workspace_id": project["workspace_id"],
        "project_id": project["_id"],
        "task_id": task["_id"],
        "author_id": actor.user_id,
        "body": body,
        "mentions": mentioned,
        "edited": False,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    async with ctx.write() as unit:
        session = unit.session
        await comments.insert(db, comment, session=session)
        await record_change(
            db,
            events=[
                event(
                    "comment.created",
                    project,
                    actor,
                    comment_id=comment["_id"],
                    task_id=task["_id"],
                    key=task["key"],
                    author_id=actor.user_id,
                    mentions=mentioned,
                )
            ],
            entries=[
                entry(
                    project=project,
                    actor=actor,
                    entity="comment",
                    entity_id=str(comment["_id"]),
                    action="comment_added",
                    at=now,
                    task=task,
                    data={"comment_id": comment["_id"]},
                )
            ],
            session=session,
        )
    return comment


async def update_comment(
    ctx: ServiceContext,
    comment: Document,
    task: TaskDoc,
    project: ProjectDoc,
    actor: Actor,
    body: str,
    expected_version: int | None,
) -> Document:
    db = ctx.db
    check_version(comment, expected_version)
    if body == comment["body"]:
        return comment
    now = utcnow()
    mentioned = await mentions_in(db, project["workspace_id"], body)
    before = tasks.id_list(comment, "mentions")
    values: Document = {"body": body, "mentions": mentioned, "edited": True, "updated_at": now}
    version = int(str(comment["version"]))
    async with ctx.write() as unit:
        session = unit.session
        if not await comments.update_guarded(
            db, str(comment["_id"]), version, values, session=session
        ):
            raise VersionMismatch("the comment changed meanwhile; read it again")
        await record_change(
            db,
            events=[
                event(
                    "comment.updated",
                    project,
                    actor,
                    comment_id=comment["_id"],
                    task_id=task["_id"],
                    key=task["key"],
                    mentions=mentioned,
                    new_mentions=[m for m in mentioned if m not in before],
                )
            ],
            entries=[
                entry(
                    project=project,
                    actor=actor,
                    entity="comment",
                    entity_id=str(comment["_id"]),
                    action="comment_edited",
                    at=now,
                    task=task,
                    changes={"body": (comment["body"], body)},
                    data={"comment_id": comment["_id"]},
                )
            ],
            session=session,
        )
    return {**comment, **values, "version": version + 1}


async def delete_comment(
    ctx: ServiceContext,
    comment: Document,
    task: TaskDoc,
    project: ProjectDoc,
    actor: Actor,
) -> None:
    db = ctx.db
    now = utcnow()
    async with ctx.write() as unit:
        session = unit.session
        if not await comments.delete(db, str(comment["_id"]), session=session):
            raise NotFound("comment not found")
        await record_change(
            db,
            events=[
                event(
                    "comment.deleted",
                    project,
                    actor,
                    comment_id=comment["_id"],
                    task_id=task["_id"],
                    key=task["key"],
                )
            ],
            entries=[
                entry(
                    project=project,
                    actor=actor,
                    entity="comment",
                    entity_id=str(comment["_id"]),
                    action="comment_deleted",
                    at=now,
                    task=task,
                    data={"comment_id": comment["_id"]},
                )
            ],
            session=session,
        )


async def list_comments(
    db: AsyncDatabase[Document], task: TaskDoc, *, after: tuple[Any, str] | None, limit: int
) -> tuple[list[Document], bool]:
    """Oldest first (conversation order)."""
    return await comments.page_of_task(db, task["_id"], after=after, limit=limit)
