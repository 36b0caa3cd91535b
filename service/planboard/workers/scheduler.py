"""The scheduler: periodic jobs that fire once per tick, however many replicas run.

Each job's time is cut into ticks of its interval; a replica runs a tick only if it
is first to insert the tick's document (its ``_id`` is ``<job>:<tick start>``), so
two replicas never both run it, and a tick missed while every replica was down is
not replayed (the next one runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from planboard.services import attachments
from planboard.services.attachment_storage import AttachmentStorage
from planboard.services.maintenance import cleanup
from planboard.services.reminders import remind_due_soon, send_digests
from planboard.store.document import Document
from planboard.store.ids import utcnow

log = logging.getLogger(__name__)

TICKS = "scheduler_ticks"


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    name: str
    interval_s: int
    run: Callable[[], Awaitable[object]]


def tick_start(now: datetime, interval_s: int) -> datetime:
    seconds = int(now.timestamp()) // interval_s * interval_s
    return datetime.fromtimestamp(seconds, UTC)


async def claim_tick(db: AsyncDatabase[Document], job: str, tick: datetime, owner: str) -> bool:
    try:
        await db[TICKS].insert_one(
            {
                "_id": f"{job}:{tick.isoformat()}",
                "job": job,
                "tick": tick,
                "owner": owner,
                "claimed_at": utcnow(),
                "done": False,
            }
        )
    except DuplicateKeyError:
        return False
    return True


class Scheduler:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        jobs: Sequence[ScheduledJob],
        *,
        poll_s: float = 5.0,
    ) -> None:
        self.db = db
        self.jobs = list(jobs)
        self.poll_s = poll_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.ran: list[tuple[str, datetime]] = []
        self._stopping = asyncio.Event()

    async def run_due(self, now: datetime | None = None) -> list[str]:
        """Run every job whose current tick nobody has claimed yet."""
        now = now or utcnow()
        started = []
        for job in self.jobs:
            tick = tick_start(now, job.interval_s)
            if not await claim_tick(self.db, job.name, tick, self.owner):
                continue
            started.append(job.name)
            self.ran.append((job.name, tick))
            error = None
            try:
                await job.run()
            except Exception as exc:  # one job's failure must not stop the others
                error = f"{type(exc).__name__}: {exc}"
                log.exception("scheduled job %s failed", job.name)
            await self.db[TICKS].update_one(
                {"_id": f"{job.name}:{tick.isoformat()}"},
                {"$set": {"done": True, "finished_at": utcnow(), "error": error}},
            )
        return started

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_due()
            except PyMongoError as exc:
                log.warning("scheduler: MongoDB unavailable (%s)", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.poll_s)

    def stop(self) -> None:
        self._stopping.set()


def default_jobs(db: AsyncDatabase[Document], storage: AttachmentStorage) -> list[ScheduledJob]:
    return [
        ScheduledJob("cleanup", 600, lambda: cleanup(db)),
        # content of deleted attachments (and of their deleted tasks, projects, workspaces)
        ScheduledJob("attachment-sweep", 300, lambda: attachments.sweep(db, storage)),
        ScheduledJob("due-soon-reminders", 3600, lambda: remind_due_soon(db)),
        ScheduledJob("daily-digest", 86400, lambda: send_digests(db)),
    ]
