"""Demo data: the sample plan in a "Demo" workspace, and in development a demo login that
owns it (idempotent)."""

from __future__ import annotations

import secrets
from importlib import resources

from pymongo.asynchronous.database import AsyncDatabase

from planboard.auth.passwords import hash_password, password_problems, verify_password
from planboard.config import Settings
from planboard.domain.access import Role
from planboard.domain.errors import Conflict, DomainError, ValidationFailed
from planboard.domain.plan import parse_plan
from planboard.services.context import ServiceContext
from planboard.services.plans import import_plan
from planboard.store import memberships, projects, quotas, users, workspaces
from planboard.store.document import Document
from planboard.store.documents import ProjectDoc
from planboard.store.ids import new_id, utcnow

DEMO_WORKSPACE = "Demo"
DEMO_PROJECT_KEY = "BOOK"
DEMO_EMAIL = "demo@planboard.test"  # .test: a reserved name, never anyone's real address
DEMO_NAME = "Demo User"


class NotDevelopment(DomainError):
    """The demo login is refused outside ``PLANBOARD_ENV=development``."""


def new_demo_password(settings: Settings) -> str:
    """A random password the password rules accept (16 characters, 96 random bits)."""
    while True:
        password = secrets.token_urlsafe(12)
        if not password_problems(
            password, min_length=settings.password_min_length, email=DEMO_EMAIL, name=DEMO_NAME
        ):
            return password


def sample_plan_text() -> str:
    return resources.files("planboard.data").joinpath("sample-plan.md").read_text(encoding="utf-8")


async def seed_demo(
    ctx: ServiceContext,
) -> tuple[ProjectDoc, bool]:
    """Returns the demo project and whether it was created now."""
    db = ctx.db
    workspace = await workspaces.find_by_name(db, DEMO_WORKSPACE)
    if workspace is None:
        workspace = await workspaces.create(db, DEMO_WORKSPACE)
    workspace_id = str(workspace["_id"])
    existing = await projects.find_by_key(db, workspace_id, DEMO_PROJECT_KEY)
    if existing is not None:
        return existing, False
    project = await import_plan(
        ctx,
        workspace_id=workspace_id,
        plan=parse_plan(sample_plan_text()),
        key=DEMO_PROJECT_KEY,
    )
    return project, True


async def seed_demo_user(
    db: AsyncDatabase[Document], settings: Settings, *, workspace_id: str, password: str
) -> tuple[Document, str]:
    """The demo login (``DEMO_EMAIL``), owner of ``workspace_id``, with ``password``.

    Development only: raises NotDevelopment in any other environment, before anything is
    written. Returns the user and what happened: ``created``, ``updated`` (its password or
    membership changed to match) or ``unchanged``. An account with that email that the
    seed did not create is left alone (Conflict).
    """
    if settings.env != "development":
        raise NotDevelopment(
            f"the demo user is seeded only when PLANBOARD_ENV=development (it is {settings.env})"
        )
    problems = password_problems(
        password, min_length=settings.password_min_length, email=DEMO_EMAIL, name=DEMO_NAME
    )
    if problems:
        raise ValidationFailed(
            [("password", f"password {p}") for p in problems], "weak demo password"
        )
    now = utcnow()
    outcome = "unchanged"
    user = await users.by_email(db, DEMO_EMAIL)
    if user is None:
        user = {
            "_id": new_id(),
            "email": DEMO_EMAIL,
            "name": DEMO_NAME,
            "password_hash": await hash_password(password),
            "email_verified": True,
            "email_verified_at": now,
            "demo": True,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        await users.insert(db, user)
        outcome = "created"
    elif not user.get("demo"):
        raise Conflict(f"an account {DEMO_EMAIL} exists that the seed did not create; left alone")
    elif not await verify_password(_stored_hash(user), password):
        await users.set_password(db, str(user["_id"]), await hash_password(password), now)
        outcome = "updated"
    user_id = str(user["_id"])
    membership = await memberships.get(db, workspace_id, user_id)
    if membership is None:
        await memberships.insert(
            db,
            {
                "_id": new_id(),
                "workspace_id": workspace_id,
                "user_id": user_id,
                "role": Role.OWNER.value,
                "created_at": now,
            },
        )
        await quotas.WORKSPACE_OWNERS.add(db, workspace_id)  # counted once an owner exists
        outcome = "created" if outcome == "created" else "updated"
    elif membership["role"] != Role.OWNER.value:
        if await memberships.set_role(
            db, workspace_id, user_id, Role.OWNER.value, current=str(membership["role"])
        ):
            await quotas.WORKSPACE_OWNERS.add(db, workspace_id)
        outcome = "created" if outcome == "created" else "updated"
    return user, outcome


def _stored_hash(user: Document) -> str | None:
    stored = user.get("password_hash")
    return stored if isinstance(stored, str) else None
