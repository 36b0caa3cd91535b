"""`planboard backup` / `planboard restore` against the real dev MongoDB server (and S3 on moto)."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from bson import Int64, ObjectId
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from planboard.config import Settings
from planboard.services import backup
from planboard.store.document import Document

pytestmark = pytest.mark.integration


def _documents(n: int) -> list[dict[str, Any]]:
    # Decimal128 is left out: the dev server (nx-27017) cannot store it. Archives carry
    # raw BSON, so on MongoDB it round-trips like every other type.
    base = datetime(2026, 11, 25, 3, 0, 12, 345000, tzinfo=UTC)
    docs: list[dict[str, Any]] = []
    for i in range(n):
        docs.append(
            {
                "_id": ObjectId(),
                "seq": i,
                "big": Int64(2**40 + i),
                "ratio": i / 7,
                "done": i % 2 == 0,
                "nothing": None,
                "when": base + timedelta(minutes=i),
                "title": f"Tâche n°{i} — 计划 ✓ 🚀 שלום",
                "tags": ["a", "β", str(i)],
                "blob": bytes([i % 256, 0, 255]),
                "nested": {"level": 1, "inner": {"level": 2, "list": [1, 2.5, "x"], "at": base}},
                "empty": {},
            }
        )
    return docs


@pytest_asyncio.fixture
async def source_db(
    mongo_client: AsyncMongoClient[Document], settings: Settings
) -> AsyncIterator[str]:
    """A fresh database with three collections of varied BSON types."""
    name = f"{settings.mongodb_db}_bksrc_{uuid.uuid4().hex[:6]}"
    db = mongo_client[name]
    await db["tasks"].insert_many(_documents(2500))
    await db["tasks"].create_index([("seq", 1)], unique=True)
    await db["projects"].insert_many(
        [{"_id": f"p{i}", "name": f"Projet {i} ünïcødé", "key": f"PB{i}"} for i in range(30)]
    )
    await db["users"].insert_one({"_id": "u1", "email": "ada@example.com", "roles": ["owner"]})
    yield name
    await mongo_client.drop_database(name)


@pytest_asyncio.fixture
async def target_db(
    mongo_client: AsyncMongoClient[Document], settings: Settings
) -> AsyncIterator[str]:
    name = f"{settings.mongodb_db}_bkdst_{uuid.uuid4().hex[:6]}"
    yield name
    await mongo_client.drop_database(name)


async def _snapshot(client: AsyncMongoClient[Document], database: str) -> dict[str, list[Any]]:
    db = client[database]
    out: dict[str, list[Any]] = {}
    for name in sorted(await db.list_collection_names()):
        if name.startswith("system."):
            continue
        docs = await db[name].find({}).to_list(None)
        out[name] = sorted(docs, key=lambda d: str(d["_id"]))
    return out


async def test_round_trip_loses_nothing(
    mongo_client: AsyncMongoClient[Document], source_db: str, target_db: str, tmp_path: Path
) -> None:
    steps: list[backup.BackupStep] = []
    result = await backup.backup(
        mongo_client,
        source_db,
        backup.DirectoryTarget(tmp_path),
        name="nightly",
        progress=steps.append,
    )
    assert result.location == str(tmp_path / "nightly.tar.gz")
    manifest = result.manifest
    assert {c.name: c.count for c in manifest.collections} == {
        "projects": 30,
        "tasks": 2500,
        "users": 1,
    }
    assert manifest.database == source_db
    assert manifest.consistency == "per-collection"  # the dev server has no snapshot reads
    assert manifest.started_at <= manifest.finished_at
    assert {s.phase for s in steps} >= {"dump", "archive", "upload"}
    # The archive is a plain tar.gz whose manifest comes first.
    with tarfile.open(tmp_path / "nightly.tar.gz", "r:gz") as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json"
    assert len(names) == 4

    restored = await backup.restore(
        mongo_client, target_db, str(tmp_path / "nightly.tar.gz"), progress=steps.append
    )
    assert restored == backup.read_manifest(tmp_path / "nightly.tar.gz")
    source = await _snapshot(mongo_client, source_db)
    copy = await _snapshot(mongo_client, target_db)
    assert copy.keys() == source.keys()
    for name in source:
        assert len(copy[name]) == len(source[name])
        assert copy[name] == source[name], name
    task = copy["tasks"][0]
    assert isinstance(task["when"], datetime)
    assert task["when"].tzinfo is not None
    assert isinstance(task["nested"]["inner"]["at"], datetime)
    assert "🚀" in task["title"]
    # The unique index came back and is enforced.
    with pytest.raises(DuplicateKeyError):
        await mongo_client[target_db]["tasks"].insert_one({"seq": 0})


async def test_restore_refuses_occupied_database_unless_drop(
    mongo_client: AsyncMongoClient[Document], source_db: str, target_db: str, tmp_path: Path
) -> None:
    await backup.backup(mongo_client, source_db, backup.DirectoryTarget(tmp_path), name="b1")
    archive = str(tmp_path / "b1.tar.gz")
    await mongo_client[target_db]["users"].insert_one({"_id": "intruder"})
    with pytest.raises(backup.TargetNotEmpty, match=r"users.*--drop"):
        await backup.restore(mongo_client, target_db, archive)
    assert await mongo_client[target_db]["tasks"].count_documents({}) == 0
    await backup.restore(mongo_client, target_db, archive, drop=True)
    users = await mongo_client[target_db]["users"].find({}).to_list(None)
    assert [u["_id"] for u in users] == ["u1"]
    assert await mongo_client[target_db]["tasks"].count_documents({}) == 2500


def _rewrite(archive: Path, corrupt_member: str) -> None:
    """Flip one byte of a member's data, keeping a well-formed tar.gz."""
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            handle = tar.extractfile(member)
            assert handle is not None
            data = bytearray(handle.read())
            if member.name.endswith(corrupt_member):
                data[len(data) // 2] ^= 0x01
            members.append((member, bytes(data)))
    with tarfile.open(archive, "w:gz") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))


async def test_restore_refuses_a_corrupt_archive(
    mongo_client: AsyncMongoClient[Document], source_db: str, target_db: str, tmp_path: Path
) -> None:
    await backup.backup(mongo_client, source_db, backup.DirectoryTarget(tmp_path), name="c")
    archive = tmp_path / "c.tar.gz"
    good = archive.read_bytes()
    _rewrite(archive, "-tasks.bson")
    with pytest.raises(backup.CorruptArchive, match="checksum mismatch for collection 'tasks'"):
        await backup.restore(mongo_client, target_db, str(archive))
    # Truncated: the gzip stream ends early.
    archive.write_bytes(good[: len(good) // 2])
    with pytest.raises(backup.CorruptArchive, match=r"truncated|damaged"):
        await backup.restore(mongo_client, target_db, str(archive))
    # Not an archive at all.
    archive.write_bytes(gzip.compress(b"hello"))
    with pytest.raises(backup.CorruptArchive):
        await backup.restore(mongo_client, target_db, str(archive))
    # Nothing was written by the refused restores.
    assert await mongo_client[target_db].list_collection_names() == []


async def test_prune_keeps_the_newest(
    mongo_client: AsyncMongoClient[Document], source_db: str, tmp_path: Path
) -> None:
    target = backup.DirectoryTarget(tmp_path)
    for i in range(4):
        await backup.backup(mongo_client, source_db, target, name=f"b{i}", prune_keep=2)
        os.utime(tmp_path / f"b{i}.tar.gz", (time.time() - 100 + i, time.time() - 100 + i))
    (tmp_path / "unrelated.txt").write_text("kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "b2.tar.gz",
        "b3.tar.gz",
        "unrelated.txt",
    ]


def _cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANBOARD_")}
    env.update(
        PLANBOARD_ENV="test",
        PLANBOARD_MONGODB_URI=settings.mongodb_uri,
        PLANBOARD_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def _planboard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "planboard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


async def test_cli_backup_and_restore(
    mongo_client: AsyncMongoClient[Document],
    settings: Settings,
    source_db: str,
    target_db: str,
    tmp_path: Path,
) -> None:
    env = _cli_env(settings, PLANBOARD_MONGODB_DB=source_db)
    made = _planboard("backup", "--to", str(tmp_path), "--name", "cli", env=env)
    assert made.returncode == 0, made.stderr
    assert "backed up 2531 documents in 3 collections" in made.stdout
    assert "backup: dump tasks 2500/2500" in made.stderr  # progress on stderr
    archive = str(tmp_path / "cli.tar.gz")
    env = _cli_env(settings, PLANBOARD_MONGODB_DB=target_db)
    loaded = _planboard("restore", archive, env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert "restored 2531 documents" in loaded.stdout
    assert "restore: verify" in loaded.stderr
    assert await mongo_client[target_db]["tasks"].count_documents({}) == 2500
    again = _planboard("restore", archive, env=env)
    assert again.returncode == 1
    assert "--drop" in again.stderr
    _rewrite(tmp_path / "cli.tar.gz", "-projects.bson")
    corrupt = _planboard("restore", archive, "--drop", env=env)
    assert corrupt.returncode == 1
    assert "CorruptArchive: checksum mismatch for collection 'projects'" in corrupt.stderr
    assert _planboard("restore", "--help", env=env).returncode == 0


# -- S3 (moto's standalone server, a real HTTP S3 endpoint on loopback: tests/conftest.py) --


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


async def test_s3_round_trip_and_prune(
    mongo_client: AsyncMongoClient[Document],
    settings: Settings,
    source_db: str,
    target_db: str,
    s3_env: dict[str, str],
) -> None:
    bucket = f"pb-{uuid.uuid4().hex[:8]}"
    target = backup.open_target(f"s3://{bucket}/stack/demo/")
    assert isinstance(target, backup.S3Target)
    target.client.create_bucket(Bucket=bucket)
    first = await backup.backup(mongo_client, source_db, target, name="s3-a")
    assert first.location == f"s3://{bucket}/stack/demo/s3-a.tar.gz"
    await backup.backup(mongo_client, source_db, target, name="s3-b", prune_keep=1)
    assert [a.name for a in target.list()] == ["s3-b.tar.gz"]
    # Restore through the CLI, as the restore Job does.
    env = _cli_env(settings, PLANBOARD_MONGODB_DB=target_db, **s3_env)
    loaded = _planboard("restore", f"s3://{bucket}/stack/demo/s3-b.tar.gz", env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert await _snapshot(mongo_client, target_db) == await _snapshot(mongo_client, source_db)
    missing = _planboard("restore", f"s3://{bucket}/stack/demo/nope.tar.gz", "--drop", env=env)
    assert missing.returncode == 1
    assert "cannot read s3://" in missing.stderr
