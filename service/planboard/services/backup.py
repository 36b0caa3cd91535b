"""Logical backups of a Planboard database: ``planboard backup`` and ``planboard restore``.

An archive is one gzip-compressed tar file, ``<name>.tar.gz``:

- ``manifest.json`` (first member): format and version, source database, start and
  finish times, the consistency reached, and per collection its document count,
  the sha256 and size of its data file, its indexes and its creation options;
- ``collections/NNNN-<name>.bson``: the collection's documents as concatenated raw
  BSON (what ``mongodump`` writes), so every BSON type survives byte for byte.

Consistency: on a replica set or sharded cluster (MongoDB 5.0+) every collection is
read in one snapshot session, so the archive is the database at one cluster time
(snapshot reads are bounded by the server's ``minSnapshotHistoryWindowInSeconds``,
300 s by default: a longer dump fails with SnapshotTooOld rather than mixing times).
A single server without snapshot reads (the embedded dev server) is read one
collection after another: each collection is read through one cursor, but writes
made during the backup may be in one collection and not another. The manifest
says which (``consistency``: ``snapshot`` or ``per-collection``); stop the writers
(scale the API, relay and workers to zero, or pause) for an exact copy there.

Restore verifies every checksum and count before it writes anything, then loads
the collections and recreates their indexes; it refuses a database that already
holds documents in the archive's collections unless ``drop`` is given.

Targets are a directory (a mounted PVC) or an S3-compatible bucket
(``s3://bucket/prefix/``; boto3, endpoint from ``AWS_ENDPOINT_URL`` or the caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, cast

from bson import CodecOptions, json_util
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from planboard import __version__
from planboard.store.document import Document

FORMAT = "planboard-backup"
FORMAT_VERSION = 1
ARCHIVE_SUFFIX = ".tar.gz"
MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_INSERT_BATCH_DOCS = 1000
_INSERT_BATCH_BYTES = 8 << 20
_RAW = CodecOptions(document_class=RawBSONDocument, tz_aware=True)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why."""


class CorruptArchive(BackupError):
    """The archive is truncated, not ours, or does not match its manifest."""


class TargetNotEmpty(BackupError):
    """The restore target already holds documents in the archive's collections."""


# -- progress -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupStep:
    """One step of a long operation, for a progress indicator."""

    phase: str  # dump | archive | upload | download | verify | restore | indexes | prune
    item: str = ""  # collection or archive name
    done: int = 0
    total: int | None = None


ProgressFn = Callable[[BackupStep], None]


def _no_progress(_: BackupStep) -> None:
    return None


# -- manifest -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollectionEntry:
    name: str
    file: str
    count: int
    sha256: str
    bytes: int
    indexes: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Manifest:
    database: str
    started_at: str
    finished_at: str
    consistency: str  # snapshot | per-collection
    collections: list[CollectionEntry]
    server_version: str = ""
    cluster_time: str | None = None
    planboard_version: str = __version__
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def total_documents(self) -> int:
        return sum(c.count for c in self.collections)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise CorruptArchive(f"not a Planboard backup (format {data.get('format')!r})")
            if data.get("format_version") != FORMAT_VERSION:
                raise CorruptArchive(
                    f"archive format version {data.get('format_version')} is not supported "
                    f"(this planboard reads version {FORMAT_VERSION})"
                )
            data["collections"] = [CollectionEntry(**c) for c in data["collections"]]
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptArchive(f"the manifest is not valid: {exc}") from None


def _ext_json(value: Any) -> Any:
    """BSON values (index filters, collation) as canonical Extended JSON, to JSON."""
    return json.loads(json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS))


def _from_ext_json(value: Any) -> Any:
    return json_util.loads(json.dumps(value))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_backup_name(database: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{database}-{stamp}"


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise BackupError(
            f"backup name {name!r}: use letters, digits, '.', '_' and '-' (at most 200)"
        )
    return name


def _member_name(index: int, collection: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", collection)[:100]
    return f"collections/{index:04d}-{safe}.bson"


# -- reading the source ---------------------------------------------------------------


async def _snapshot_supported(client: AsyncMongoClient[Document]) -> tuple[bool, str]:
    """Whether snapshot reads work here (replica set / mongos, wire version 13+)."""
    hello = await client.admin.command("hello")
    version = ""
    with contextlib.suppress(Exception):  # buildInfo is informational only
        version = str((await client.admin.command("buildInfo")).get("version", ""))
    clustered = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    return clustered and int(hello.get("maxWireVersion", 0)) >= 13, version


@contextlib.asynccontextmanager
async def _read_session(
    client: AsyncMongoClient[Document], snapshot: bool
) -> AsyncIterator[AsyncClientSession | None]:
    if not snapshot:
        yield None
        return
    async with client.start_session(snapshot=True) as session:
        yield session


def _raw_collection(
    client: AsyncMongoClient[Document], database: str, name: str
) -> AsyncCollection[RawBSONDocument]:
    """The collection read and written as undecoded BSON (types kept byte for byte)."""
    db = client.get_database(database, codec_options=_RAW)
    return cast("AsyncCollection[RawBSONDocument]", db[name])


async def _dump_collection(
    client: AsyncMongoClient[Document],
    database: str,
    name: str,
    out: Path,
    session: AsyncClientSession | None,
    progress: ProgressFn,
) -> tuple[int, str, int]:
    """Write a collection as raw BSON to ``out``; return (count, sha256, bytes)."""
    collection = _raw_collection(client, database, name)
    total = await client[database][name].estimated_document_count()
    digest = hashlib.sha256()
    count = size = 0
    with out.open("wb") as handle:
        cursor = collection.find({}, session=session, batch_size=1000)
        async for doc in cursor:
            data = doc.raw
            handle.write(data)
            digest.update(data)
            count += 1
            size += len(data)
            if count % 1000 == 0:
                progress(BackupStep("dump", name, count, max(total, count)))
    progress(BackupStep("dump", name, count, count))
    return count, digest.hexdigest(), size


async def _collection_specs(
    client: AsyncMongoClient[Document], database: str
) -> list[tuple[str, dict[str, Any]]]:
    """(name, options) of the database's collections, system ones and views left out."""
    specs: list[tuple[str, dict[str, Any]]] = []
    cursor = await client[database].list_collections()
    async for info in cursor:
        name = info["name"]
        if name.startswith("system.") or info.get("type", "collection") != "collection":
            continue
        options = {k: v for k, v in dict(info.get("options") or {}).items() if k != "uuid"}
        specs.append((name, options))
    return sorted(specs)


async def _indexes(client: AsyncMongoClient[Document], database: str, name: str) -> list[Any]:
    out: list[dict[str, Any]] = []
    cursor = await client[database][name].list_indexes()
    async for index in cursor:
        info = {k: v for k, v in dict(index).items() if k not in ("v", "ns")}
        if info.get("name") == "_id_":
            continue
        info["key"] = [[k, v] for k, v in dict(info["key"]).items()]
        out.append(_ext_json(info))
    return out


async def dump_database(
    client: AsyncMongoClient[Document],
    database: str,
    archive_path: Path,
    *,
    progress: ProgressFn = _no_progress,
) -> Manifest:
    """Write a backup archive of ``database`` to ``archive_path`` (a new file)."""
    started = _now()
    snapshot, server_version = await _snapshot_supported(client)
    entries: list[CollectionEntry] = []
    with tempfile.TemporaryDirectory(prefix="planboard-backup-") as tmp:
        workdir = Path(tmp)
        cluster_time: str | None = None
        async with _read_session(client, snapshot) as session:
            for index, (name, options) in enumerate(await _collection_specs(client, database)):
                member = _member_name(index, name)
                local = workdir / f"{index:04d}.bson"
                count, sha, size = await _dump_collection(
                    client, database, name, local, session, progress
                )
                entries.append(
                    CollectionEntry(
                        name=name,
                        file=member,
                        count=count,
                        sha256=sha,
                        bytes=size,
                        indexes=await _indexes(client, database, name),
                        options=_ext_json(options),
                    )
                )
            if session is not None and session.operation_time is not None:
                ts = session.operation_time
                cluster_time = f"{ts.time}.{ts.inc}"
        manifest = Manifest(
            database=database,
            started_at=started,
            finished_at=_now(),
            consistency="snapshot" if snapshot else "per-collection",
            collections=entries,
            server_version=server_version,
            cluster_time=cluster_time,
        )
        progress(BackupStep("archive", archive_path.name, 0, len(entries)))
        await asyncio.to_thread(_write_archive, archive_path, manifest, workdir)
    return manifest


def _write_archive(archive_path: Path, manifest: Manifest, workdir: Path) -> None:
    with tarfile.open(archive_path, "w:gz", compresslevel=6) as tar:
        data = manifest.to_json()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        info.mtime = int(datetime.now(UTC).timestamp())
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
        for index, entry in enumerate(manifest.collections):
            local = workdir / f"{index:04d}.bson"
            info = tarfile.TarInfo(entry.file)
            info.size = local.stat().st_size
            info.mtime = int(local.stat().st_mtime)
            info.mode = 0o644
            with local.open("rb") as handle:
                tar.addfile(info, handle)
    with archive_path.open("rb") as handle:
        os.fsync(handle.fileno())


# -- verifying and reading an archive -------------------------------------------------


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            yield tar
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise BackupError(f"no archive at {path}") from None
        raise CorruptArchive(f"{path.name} is truncated or not a tar.gz archive: {exc}") from None


def _frame_and_hash(stream: IO[bytes], name: str) -> tuple[int, str, int]:
    """Count the BSON documents of a member while hashing it; raise on bad framing."""
    digest = hashlib.sha256()
    count = size = 0
    while True:
        head = stream.read(4)
        if not head:
            break
        if len(head) < 4:
            raise CorruptArchive(f"{name}: truncated document header")
        length = int.from_bytes(head, "little")
        if length < 5:
            raise CorruptArchive(f"{name}: invalid document length {length}")
        digest.update(head)
        remaining = length - 4
        while remaining:
            chunk = stream.read(min(remaining, _CHUNK))
            if not chunk:
                raise CorruptArchive(f"{name}: truncated document")
            digest.update(chunk)
            remaining -= len(chunk)
        count += 1
        size += length
    return count, digest.hexdigest(), size


def verify_archive(path: Path, *, progress: ProgressFn = _no_progress) -> Manifest:
    """Check the archive against its manifest (checksums, sizes, counts); return it."""
    with _open_archive(path) as tar:
        try:
            first = tar.next()
            if first is None or first.name != MANIFEST:
                raise CorruptArchive(f"{path.name}: {MANIFEST} is not the first member")
            handle = tar.extractfile(first)
            if handle is None:
                raise CorruptArchive(f"{path.name}: {MANIFEST} is not a file")
            manifest = Manifest.from_json(handle.read())
            expected = {c.file: c for c in manifest.collections}
            seen: set[str] = set()
            done = 0
            while (member := tar.next()) is not None:
                done += 1
                entry = expected.get(member.name)
                if entry is None or member.name in seen:
                    raise CorruptArchive(f"{path.name}: unexpected member {member.name}")
                seen.add(member.name)
                stream = tar.extractfile(member)
                if stream is None:
                    raise CorruptArchive(f"{path.name}: {member.name} is not a file")
                count, sha, size = _frame_and_hash(stream, member.name)
                if sha != entry.sha256 or size != entry.bytes:
                    raise CorruptArchive(
                        f"checksum mismatch for collection {entry.name!r} ({member.name}): "
                        f"manifest sha256 {entry.sha256[:12]}…, archive {sha[:12]}…"
                    )
                if count != entry.count:
                    raise CorruptArchive(
                        f"collection {entry.name!r}: {count} documents, manifest says {entry.count}"
                    )
                progress(BackupStep("verify", entry.name, done, len(expected)))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise CorruptArchive(f"{path.name} is truncated or damaged: {exc}") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise CorruptArchive(f"{path.name}: members listed in the manifest are missing: {missing}")
    return manifest


def read_manifest(path: Path) -> Manifest:
    """The manifest of an archive, without verifying the data."""
    with _open_archive(path) as tar:
        first = tar.next()
        handle = tar.extractfile(first) if first is not None else None
        if first is None or first.name != MANIFEST or handle is None:
            raise CorruptArchive(f"{path.name}: {MANIFEST} is not the first member")
        return Manifest.from_json(handle.read())


# -- restoring ------------------------------------------------------------------------


def _raw_documents(stream: IO[bytes]) -> Iterator[RawBSONDocument]:
    while head := stream.read(4):
        length = int.from_bytes(head, "little")
        yield RawBSONDocument(head + stream.read(length - 4), _RAW)


async def _existing_counts(
    client: AsyncMongoClient[Document], database: str, names: list[str]
) -> dict[str, int]:
    present = set(await client[database].list_collection_names())
    counts: dict[str, int] = {}
    for name in names:
        if name in present:
            counts[name] = await client[database][name].count_documents({})
    return counts


async def _insert_member(
    client: AsyncMongoClient[Document],
    database: str,
    entry: CollectionEntry,
    stream: IO[bytes],
    progress: ProgressFn,
) -> int:
    collection = _raw_collection(client, database, entry.name)
    batch: list[RawBSONDocument] = []
    batch_bytes = done = 0
    for doc in _raw_documents(stream):
        batch.append(doc)
        batch_bytes += len(doc.raw)
        if len(batch) >= _INSERT_BATCH_DOCS or batch_bytes >= _INSERT_BATCH_BYTES:
            await collection.insert_many(batch, ordered=True, bypass_document_validation=True)
            done += len(batch)
            batch, batch_bytes = [], 0
            progress(BackupStep("restore", entry.name, done, entry.count))
    if batch:
        await collection.insert_many(batch, ordered=True, bypass_document_validation=True)
        done += len(batch)
    progress(BackupStep("restore", entry.name, done, entry.count))
    return done


async def _create_indexes(
    client: AsyncMongoClient[Document], database: str, entry: CollectionEntry
) -> None:
    collection = client[database][entry.name]
    for raw in entry.indexes:
        spec = dict(_from_ext_json(raw))
        keys = [(str(k), v) for k, v in spec.pop("key")]
        spec.pop("background", None)
        await collection.create_index(keys, **spec)


async def restore_archive(
    client: AsyncMongoClient[Document],
    database: str,
    archive_path: Path,
    *,
    drop: bool = False,
    progress: ProgressFn = _no_progress,
) -> Manifest:
    """Verify ``archive_path``, then load it into ``database``; return its manifest."""
    manifest = await asyncio.to_thread(verify_archive, archive_path, progress=progress)
    names = [c.name for c in manifest.collections]
    existing = await _existing_counts(client, database, names)
    occupied = sorted(name for name, count in existing.items() if count)
    if occupied and not drop:
        raise TargetNotEmpty(
            f"database {database!r} already holds documents in {', '.join(occupied)}: "
            "restore into an empty database, or pass --drop to replace these collections"
        )
    if drop:
        for name in existing:
            await client[database].drop_collection(name)
    by_file = {c.file: c for c in manifest.collections}
    for created in manifest.collections:
        options = dict(_from_ext_json(created.options))
        if options:
            await client[database].create_collection(created.name, **options)
    # The tar is read sequentially; the synchronous reads are small and buffered.
    with _open_archive(archive_path) as tar:
        for member in tar:
            entry = by_file.get(member.name)
            stream = tar.extractfile(member) if entry is not None else None
            if entry is None or stream is None:
                continue
            inserted = await _insert_member(client, database, entry, stream, progress)
            if inserted != entry.count:
                raise BackupError(f"{entry.name}: inserted {inserted}, expected {entry.count}")
    for done, loaded in enumerate(manifest.collections, start=1):
        await _create_indexes(client, database, loaded)
        progress(BackupStep("indexes", loaded.name, done, len(manifest.collections)))
        count = await client[database][loaded.name].count_documents({})
        if count != loaded.count:
            raise BackupError(
                f"after the restore {loaded.name!r} holds {count} documents, "
                f"the archive {loaded.count}"
            )
    return manifest


# -- targets --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredArchive:
    name: str  # <name>.tar.gz
    location: str  # path or s3:// URL
    modified: datetime


class Target(Protocol):
    """Where archives are kept: a directory or an S3 bucket prefix."""

    def location(self, filename: str) -> str: ...

    def put(self, local: Path, filename: str) -> str: ...

    def get(self, filename: str, local: Path) -> None: ...

    def list(self) -> list[StoredArchive]: ...

    def delete(self, filename: str) -> None: ...


class DirectoryTarget:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def location(self, filename: str) -> str:
        return str(self.directory / filename)

    def put(self, local: Path, filename: str) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / filename
        partial = final.with_name(final.name + ".partial")
        try:
            shutil.copyfile(local, partial)
            with partial.open("rb") as handle:
                os.fsync(handle.fileno())
            partial.replace(final)
        finally:
            partial.unlink(missing_ok=True)
        return str(final)

    def get(self, filename: str, local: Path) -> None:
        source = self.directory / filename
        if not source.is_file():
            raise BackupError(f"no archive at {source}")
        shutil.copyfile(source, local)

    def list(self) -> list[StoredArchive]:
        if not self.directory.is_dir():
            return []
        return [
            StoredArchive(p.name, str(p), datetime.fromtimestamp(p.stat().st_mtime, UTC))
            for p in self.directory.iterdir()
            if p.is_file() and p.name.endswith(ARCHIVE_SUFFIX)
        ]

    def delete(self, filename: str) -> None:
        (self.directory / filename).unlink(missing_ok=True)


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client (credentials from the usual AWS_* variables); a custom endpoint
    (``endpoint_url`` or ``AWS_ENDPOINT_URL``: MinIO, Ceph, moto) gets path-style buckets."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        # Custom endpoints (MinIO, Ceph, moto) rarely serve virtual-host buckets.
        s3={"addressing_style": "path" if endpoint else "auto"},
    )
    return boto3.client("s3", endpoint_url=endpoint, region_name=region or None, config=config)


class S3Target:
    """An S3-compatible bucket prefix (boto3; credentials from the usual AWS_* variables)."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.client = s3_client(endpoint_url, region)

    def location(self, filename: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{filename}"

    def put(self, local: Path, filename: str) -> str:
        self.client.upload_file(str(local), self.bucket, self.prefix + filename)
        return self.location(filename)

    def get(self, filename: str, local: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self.prefix + filename, str(local))
        except ClientError as exc:
            raise BackupError(f"cannot read {self.location(filename)}: {exc}") from None

    def list(self) -> list[StoredArchive]:
        found: list[StoredArchive] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                filename = str(obj["Key"])[len(self.prefix) :]
                if filename.endswith(ARCHIVE_SUFFIX):
                    found.append(
                        StoredArchive(filename, self.location(filename), obj["LastModified"])
                    )
        return found

    def delete(self, filename: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + filename)


def open_target(
    where: str, *, s3_endpoint: str | None = None, s3_region: str | None = None
) -> Target:
    """A directory path, or ``s3://bucket/prefix/`` for an S3-compatible bucket."""
    if where.startswith("s3://"):
        bucket, _, prefix = where[len("s3://") :].partition("/")
        if not bucket:
            raise BackupError(f"{where!r}: an S3 target looks like s3://bucket/prefix/")
        return S3Target(bucket, prefix, endpoint_url=s3_endpoint, region=s3_region)
    return DirectoryTarget(Path(where))


def split_archive_location(where: str) -> tuple[str, str]:
    """``(target, filename)`` of an archive path or ``s3://bucket/key.tar.gz`` URL."""
    if where.startswith("s3://"):
        head, _, filename = where.rpartition("/")
        if not filename.endswith(ARCHIVE_SUFFIX) or head == "s3:/":
            raise BackupError(f"{where!r}: expected s3://bucket/path/<name>{ARCHIVE_SUFFIX}")
        return head + "/", filename
    path = Path(where)
    return str(path.parent), path.name


# -- the commands ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupResult:
    location: str
    manifest: Manifest
    archive_bytes: int
    pruned: list[str]


async def backup(
    client: AsyncMongoClient[Document],
    database: str,
    target: Target,
    *,
    name: str | None = None,
    prune_keep: int | None = None,
    progress: ProgressFn = _no_progress,
) -> BackupResult:
    """Back ``database`` up to ``target`` as ``<name>.tar.gz``; prune to ``prune_keep``."""
    filename = _check_name(name or default_backup_name(database)) + ARCHIVE_SUFFIX
    with tempfile.TemporaryDirectory(prefix="planboard-archive-") as tmp:
        local = Path(tmp) / filename
        manifest = await dump_database(client, database, local, progress=progress)
        size = local.stat().st_size
        progress(BackupStep("upload", filename, 0, size))
        location = await asyncio.to_thread(target.put, local, filename)
        progress(BackupStep("upload", filename, size, size))
    pruned: list[str] = []
    if prune_keep is not None:
        pruned = await asyncio.to_thread(prune, target, prune_keep, keep=filename)
        for done, gone in enumerate(pruned, start=1):
            progress(BackupStep("prune", gone, done, len(pruned)))
    return BackupResult(location, manifest, size, pruned)


def prune(target: Target, keep_count: int, *, keep: str | None = None) -> list[str]:
    """Delete all but the newest ``keep_count`` archives (never ``keep``); their names."""
    if keep_count < 1:
        raise BackupError("--prune-keep must be at least 1")
    archives = sorted(target.list(), key=lambda a: (a.modified, a.name), reverse=True)
    gone: list[str] = []
    for archive in archives[keep_count:]:
        if archive.name == keep:  # the archive just written stays, whatever the clocks say
            continue
        target.delete(archive.name)
        gone.append(archive.location)
    return gone


async def restore(
    client: AsyncMongoClient[Document],
    database: str,
    where: str,
    *,
    drop: bool = False,
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
    progress: ProgressFn = _no_progress,
) -> Manifest:
    """Restore the archive at ``where`` (a path or s3:// URL) into ``database``."""
    if not where.startswith("s3://"):
        return await restore_archive(client, database, Path(where), drop=drop, progress=progress)
    target_where, filename = split_archive_location(where)
    target = open_target(target_where, s3_endpoint=s3_endpoint, s3_region=s3_region)
    with tempfile.TemporaryDirectory(prefix="planboard-restore-") as tmp:
        local = Path(tmp) / filename
        progress(BackupStep("download", filename))
        await asyncio.to_thread(target.get, filename, local)
        return await restore_archive(client, database, local, drop=drop, progress=progress)
