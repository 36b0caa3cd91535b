"""The ``jobs`` group: runs queued exports and imports (once each, progress on the job)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from planboard.config import Settings
from planboard.events.consumer import ConsumerGroup
from planboard.events.envelope import Event
from planboard.services.context import ServiceContext
from planboard.services.jobs import run_job
from planboard.store.document import Document


def jobs_group(db: AsyncDatabase[Document], settings: Settings) -> ConsumerGroup:
    ctx = ServiceContext(db.client, db, settings)  # no read cache: the rollups worker invalidates

    async def handle(event: Event) -> None:
        await run_job(ctx, str(event.data["job_id"]))

    return ConsumerGroup(
        name="jobs",
        families=("job",),
        handle=handle,
        event_types=frozenset({"job.queued"}),
        concurrency=1,  # one export or import at a time per worker process
    )
