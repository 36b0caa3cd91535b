"""Demo data: the sample plan in a "Demo" workspace (idempotent)."""

from __future__ import annotations

from importlib import resources

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.plan import parse_plan
from planboard.services.plans import import_plan
from planboard.store import projects, workspaces
from planboard.store.document import Document

DEMO_WORKSPACE = "Demo"
DEMO_PROJECT_KEY = "BOOK"


def sample_plan_text() -> str:
    return resources.files("planboard.data").joinpath("sample-plan.md").read_text(encoding="utf-8")


async def seed_demo(
    client: AsyncMongoClient[Document], db: AsyncDatabase[Document]
) -> tuple[Document, bool]:
    """Returns the demo project and whether it was created now."""
    workspace = await workspaces.find_by_name(db, DEMO_WORKSPACE)
    if workspace is None:
        workspace = await workspaces.create(db, DEMO_WORKSPACE)
    workspace_id = str(workspace["_id"])
    existing = await projects.find_by_key(db, workspace_id, DEMO_PROJECT_KEY)
    if existing is not None:
        return existing, False
    project = await import_plan(
        client,
        db,
        workspace_id=workspace_id,
        plan=parse_plan(sample_plan_text()),
        key=DEMO_PROJECT_KEY,
    )
    return project, True
