"""The service context: what every use case needs from the process, built once.

``ServiceContext`` holds the MongoDB client and database, the settings and (in the API)
the read-through cache. Services that write take it instead of a client and a database;
the process builds one (the API per app in a cleanup context, a worker or CLI command
per run) and passes it along: nothing is built per request.

A write runs in a **unit of work** (``async with ctx.write(project_id) as unit:``): the
store's write unit (a MongoDB transaction where the server supports one, store/tx.py)
whose ``unit.session`` the store calls take, plus the cache invalidations the write
implies (the projects it names, ``unit.invalidates(...)``), run once the write committed
and never after a failed one. So a client reads its own writes at once (the next read in
this process misses the cache), and no handler has to remember to invalidate. A process
without a read cache (workers, CLI) leaves it to the ``rollups`` worker, which invalidates
again from the events of every write (docs/architecture.md, "Caching").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from planboard.config import Settings
from planboard.services.cache import ReadThrough
from planboard.store.document import Document
from planboard.store.tx import write_unit


@dataclass(slots=True)
class UnitOfWork:
    """One write: its session (None without transactions) and the projects whose cached
    reads it changes."""

    session: AsyncClientSession | None = None
    projects: set[str] = field(default_factory=set)

    def invalidates(self, project_id: str) -> None:
        """Drop ``project_id``'s cached reads once this write has committed."""
        self.projects.add(project_id)


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """The MongoDB client and database, the settings and the read cache of a process."""

    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    settings: Settings
    cache: ReadThrough | None = None  # the API's; workers and the CLI have none

    @asynccontextmanager
    async def write(self, *projects: str) -> AsyncIterator[UnitOfWork]:
        """A unit of work invalidating ``projects`` (and what it names later) on commit."""
        unit = UnitOfWork(projects=set(projects))
        async with write_unit(self.client, self.settings.mongodb_transactions) as session:
            unit.session = session
            yield unit
        # committed (an exception above skips this: a failed write invalidates nothing)
        if self.cache is not None:
            for project_id in sorted(unit.projects):
                await self.cache.invalidate(project_id)
