"""Full-text search over tasks, projects and comments, served from ``search_index``.

Indexing: every entity becomes one entry with its words (``terms``), the words of its
title or key (``title_terms``) and its bounded word prefixes as text-index tokens
(``tokens``, see ``store/search.py``). The ``search``
worker re-reads the entity named by each event and (re)indexes or deletes it, so
applying an event twice, late or out of order leaves the same entry (idempotent).

Querying: every query word must be a prefix of some word of the entry (a word shorter
than 2 characters must be a whole word). MongoDB narrows the entries to the caller's
workspaces and filters, and the words through the text index on ``tokens`` (``$text``
with every word's token quoted: all must be there), and hands back at most ``CANDIDATES`` of
the most recently changed matches; ranking happens here: an exact word beats a
prefix, a title/key match beats a body match, and recency breaks ties.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.errors import Forbidden, NotFound, ValidationFailed
from planboard.events.envelope import Event
from planboard.services.access import Caller
from planboard.store import comments, memberships, projects, tasks
from planboard.store import search as index
from planboard.store.document import Document

MIN_PREFIX = index.MIN_PREFIX
MAX_PREFIX = 15  # longer query words are matched on their first 15 characters, then checked
MAX_TERMS = 2000  # distinct words kept per entry
MAX_PREFIXES = 6000  # prefixes kept per entry (title words first)
MAX_QUERY_WORDS = 8
CANDIDATES = 1000  # matching entries ranked per query (the newest ones)
SNIPPET_CHARS = 200

TYPES = ("task", "project", "comment")
SCOPE_OF_TYPE = {"task": "tasks:read", "project": "projects:read", "comment": "comments:read"}

_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # letters and digits of any script


def words(text: str) -> list[str]:
    """Lower-cased (case-folded, NFKC) words of ``text``; punctuation separates words."""
    normalized = unicodedata.normalize("NFKC", text).casefold()
    return _WORD.findall(normalized)


def _unique(items: Sequence[str], limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if len(seen) >= limit:
            break
        seen.setdefault(item, None)
    return list(seen)


def prefixes_of(terms: Sequence[str], limit: int = MAX_PREFIXES) -> list[str]:
    out: dict[str, None] = {}
    for term in terms:
        for n in range(MIN_PREFIX, min(len(term), MAX_PREFIX) + 1):
            out.setdefault(term[:n], None)
            if len(out) >= limit:
                return list(out)
    return list(out)


def _ms(value: object) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return 0


def _entry(
    kind: str,
    doc: Mapping[str, Any],
    *,
    title: str,
    key: str | None,
    body: str,
    extra: Mapping[str, Any],
) -> Document:
    title_terms = _unique(words(f"{key or ''} {title}"), MAX_TERMS)
    terms = _unique([*title_terms, *words(body)], MAX_TERMS)
    entity_id = doc["_id"]
    return {
        "_id": index.entry_id(kind, entity_id),
        "type": kind,
        "entity_id": entity_id,
        "workspace_id": doc["workspace_id"],
        "key": key,
        "title": title,
        "snippet": " ".join(body.split())[:SNIPPET_CHARS],
        "title_terms": title_terms,
        "terms": terms,
        "tokens": index.tokens_of(terms, prefixes_of(terms)),
        "updated_ms": _ms(doc.get("updated_at") or doc.get("created_at")),
        **extra,
    }


def task_entry(task: Mapping[str, Any]) -> Document:
    return _entry(
        "task",
        task,
        title=str(task.get("title") or ""),
        key=str(task.get("key") or "") or None,
        body=str(task.get("description") or ""),
        extra={
            "project_id": task["project_id"],
            "task_id": task["_id"],
            "status": task.get("status"),
            "assignee_id": task.get("assignee_id"),
            "labels": [str(x) for x in task.get("labels") or []],
        },
    )


def project_entry(project: Mapping[str, Any]) -> Document:
    return _entry(
        "project",
        project,
        title=str(project.get("name") or ""),
        key=str(project.get("key") or "") or None,
        body=str(project.get("description") or ""),
        extra={"project_id": project["_id"], "status": project.get("status")},
    )


def comment_entry(comment: Mapping[str, Any], task_key: str | None) -> Document:
    body = str(comment.get("body") or "")
    return _entry(
        "comment",
        comment,
        title="",
        key=None,
        body=body,
        extra={
            "project_id": comment["project_id"],
            "task_id": str(comment["task_id"]),
            "task_key": task_key,
            "author_id": comment.get("author_id"),
        },
    )


# --------------------------------------------------------------------------- indexing


async def index_task(db: AsyncDatabase[Document], task_id: str) -> None:
    task = await tasks.get(db, task_id)
    if task is None:  # deleted (its comments went with it)
        await index.delete_where(db, {"task_id": task_id})
        return
    await index.upsert(db, task_entry(task))


async def index_project(db: AsyncDatabase[Document], project_id: str, *, cascade: bool) -> None:
    project = await projects.get(db, project_id)
    if project is None:  # deleted with its tasks and comments
        await index.delete_where(db, {"project_id": project_id})
        return
    await index.upsert(db, project_entry(project))
    if cascade:  # a new key renames every task key (PB-3 → PL-3)
        entries = [task_entry(t) async for t in _tasks_of(db, project_id)]
        for batch in index.chunks(entries, 500):
            await index.upsert_many(db, batch)


async def _tasks_of(db: AsyncDatabase[Document], project_id: str) -> AsyncIterator[Document]:
    async for doc in db[tasks.TASKS].find({"project_id": project_id}):
        yield doc


async def index_comment(db: AsyncDatabase[Document], comment_id: str) -> None:
    comment = await comments.get(db, comment_id)
    if comment is None:
        await index.delete(db, "comment", comment_id)
        return
    task = await tasks.get(db, str(comment["task_id"]))
    if task is None:
        await index.delete(db, "comment", comment_id)
        return
    await index.upsert(db, comment_entry(comment, str(task.get("key") or "") or None))


async def apply_event(db: AsyncDatabase[Document], event: Event) -> None:
    """(Re)index or remove what ``event`` names, from the entity's current state."""
    family = event.type.partition(".")[0]
    data = event.data
    if family == "project":
        project_id = str(data.get("project_id") or event.key)
        changes = data.get("changes")
        renamed = isinstance(changes, Mapping) and "key" in changes  # task keys follow it
        await index_project(db, project_id, cascade=renamed)
    elif family == "task" and data.get("task_id"):
        await index_task(db, str(data["task_id"]))
    elif family == "comment" and data.get("comment_id"):
        await index_comment(db, str(data["comment_id"]))


async def apply_events(db: AsyncDatabase[Document], events: Sequence[Event]) -> None:
    """``apply_event`` for a poll's events: project and comment events one by one, then
    the tasks named by task events read with one ``find`` and written with one bulk
    write (each entry from the task's current state, so the result is the same)."""
    task_ids: list[str] = []
    for event in events:
        if event.type.partition(".")[0] == "task":
            if event.data.get("task_id"):
                task_ids.append(str(event.data["task_id"]))
        else:
            await apply_event(db, event)
    if not task_ids:
        return
    found = await tasks.many(db, task_ids)
    await index.upsert_many(db, [task_entry(task) for task in found.values()])
    gone = [task_id for task_id in dict.fromkeys(task_ids) if task_id not in found]
    if gone:  # deleted (their comments went with them)
        await index.delete_where(db, {"task_id": {"$in": gone}})


@dataclass(slots=True)
class ReindexReport:
    projects: int = 0
    tasks: int = 0
    comments: int = 0
    removed: int = 0


async def reindex(
    db: AsyncDatabase[Document],
    workspace_id: str | None = None,
    *,
    batch: int = 500,
    progress: Callable[[str, int], None] | None = None,
) -> ReindexReport:
    """Rebuild the index from the source collections (all, or one workspace)."""
    scope: Document = {"workspace_id": workspace_id} if workspace_id else {}
    report = ReindexReport()
    seen: set[str] = set()
    task_keys: dict[str, str] = {}

    async def flush(kind: str, entries: list[Document]) -> None:
        await index.upsert_many(db, entries)
        seen.update(str(e["_id"]) for e in entries)
        setattr(report, kind, getattr(report, kind) + len(entries))
        if progress is not None:
            progress(kind, int(getattr(report, kind)))

    for kind, collection in (
        ("projects", projects.PROJECTS),
        ("tasks", tasks.TASKS),
        ("comments", comments.COMMENTS),
    ):
        pending: list[Document] = []
        async for doc in db[collection].find(scope):
            if kind == "projects":
                pending.append(project_entry(doc))
            elif kind == "tasks":
                task_keys[str(doc["_id"])] = str(doc.get("key") or "")
                pending.append(task_entry(doc))
            else:
                pending.append(comment_entry(doc, task_keys.get(str(doc["task_id"])) or None))
            if len(pending) >= batch:
                await flush(kind, pending)
                pending = []
        await flush(kind, pending)
    stale = await index.ids_of(db, scope) - seen
    for stale_id in stale:
        await db[index.SEARCH_INDEX].delete_one({"_id": stale_id})
    report.removed = len(stale)
    return report


# --------------------------------------------------------------------------- querying


@dataclass(frozen=True, slots=True)
class SearchQuery:
    q: str
    workspace_id: str | None = None
    project_id: str | None = None
    statuses: tuple[str, ...] = ()
    assignee: str | None = None
    labels: tuple[str, ...] = ()
    types: tuple[str, ...] = ()


@dataclass(slots=True)
class Hit:
    entry: Document
    score: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def position(self) -> tuple[int, int, str]:
        """Sort position: best score, then newest, then id (descending, ascending)."""
        return (-self.score, -int(str(self.entry.get("updated_ms") or 0)), str(self.entry["_id"]))


def query_words(q: str) -> list[str]:
    found = _unique(words(q), MAX_QUERY_WORDS + 1)
    if not found:
        raise ValidationFailed([("q", "must contain at least one letter or digit")])
    if len(found) > MAX_QUERY_WORDS:
        raise ValidationFailed([("q", f"at most {MAX_QUERY_WORDS} distinct words")])
    return found


def _matches_word(word: str, terms: Sequence[str]) -> bool:
    return any(t.startswith(word) for t in terms)


def score(entry: Mapping[str, Any], query: Sequence[str]) -> int | None:
    """Relevance of an entry, or None when a word matches none of its words."""
    title = [str(t) for t in entry.get("title_terms") or []]
    body = [str(t) for t in entry.get("terms") or []]
    total = 0
    for word in query:
        if word in title:
            total += 8
        elif word in body:
            total += 4
        elif _matches_word(word, title):
            total += 3
        elif _matches_word(word, body):
            total += 1
        else:
            return None
    return total


def allowed_types(caller: Caller, requested: Sequence[str]) -> list[str]:
    if requested:
        for kind in requested:
            caller.require_scope(SCOPE_OF_TYPE[kind])
        return list(requested)
    if caller.scopes is None:
        return list(TYPES)
    kinds = [k for k in TYPES if SCOPE_OF_TYPE[k] in caller.scopes]
    if not kinds:
        raise Forbidden("this token lacks projects:read, tasks:read and comments:read")
    return kinds


async def workspaces_of(
    db: AsyncDatabase[Document],
    caller: Caller,
    only: str | None,
    project_id: str | None = None,
) -> list[str]:
    """The workspaces a search covers: the caller's, narrowed by ``only`` and by the
    project's workspace. A workspace or project the caller cannot see is a 404 either way
    (never an empty answer that would differ from a missing one)."""
    mine = [m["workspace_id"] for m in await memberships.of_user(db, caller.user_id)]
    if only is not None:
        if only not in mine:
            raise NotFound("workspace not found")
        mine = [only]
    if project_id is not None:
        project = await projects.get(db, project_id)
        if project is None or project["workspace_id"] not in mine:
            raise NotFound("project not found")
        return [project["workspace_id"]]
    return mine


def mongo_filter(
    workspace_ids: Sequence[str], kinds: Sequence[str], query: SearchQuery, qwords: Sequence[str]
) -> Document:
    wanted = _unique([w[:MAX_PREFIX] for w in qwords], MAX_QUERY_WORDS)
    # Quoted terms: MongoDB's $text ANDs phrases (bare words would be ORed), as FTS5 does.
    flt: Document = {
        "workspace_id": {"$in": list(workspace_ids)},
        "$text": {"$search": " ".join(f'"{index.token(w)}"' for w in wanted)},
    }
    if len(kinds) < len(TYPES):
        flt["type"] = {"$in": list(kinds)}
    if query.project_id:
        flt["project_id"] = query.project_id
    if query.statuses:
        flt["status"] = {"$in": list(query.statuses)}
    if query.assignee:
        flt["assignee_id"] = query.assignee
    if query.labels:
        flt["labels"] = {"$all": list(query.labels)}
    return flt


async def search(
    db: AsyncDatabase[Document],
    caller: Caller,
    query: SearchQuery,
    *,
    after: tuple[int, int, str] | None,
    limit: int,
    workspace_ids: Sequence[str] | None = None,
) -> tuple[list[Hit], bool]:
    """One page of hits in relevance order after ``after`` and whether more follow
    (``workspace_ids``: the caller's, from :func:`workspaces_of`, when already known)."""
    qwords = query_words(query.q)
    kinds = allowed_types(caller, query.types)
    if workspace_ids is None:
        workspace_ids = await workspaces_of(db, caller, query.workspace_id, query.project_id)
    if not workspace_ids:
        return [], False
    found = await index.candidates(
        db, mongo_filter(workspace_ids, kinds, query, qwords), CANDIDATES
    )
    hits: list[Hit] = []
    for entry in found:
        relevance = score(entry, qwords)
        if relevance is not None:
            hits.append(Hit(entry, relevance))
    hits.sort(key=lambda h: h.position)
    if after is not None:
        hits = [h for h in hits if h.position > after]
    return hits[:limit], len(hits) > limit
