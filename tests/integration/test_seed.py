"""The demo data: the Demo workspace with the sample plan, and in development only a demo
login that owns it (services/seed.py, ``planboard seed --demo-user``)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from planboard.auth.passwords import verify_password
from planboard.domain.errors import Conflict, ValidationFailed
from planboard.services.context import ServiceContext
from planboard.services.seed import (
    DEMO_EMAIL,
    NotDevelopment,
    seed_demo,
    seed_demo_user,
)
from planboard.store import migrations

pytestmark = pytest.mark.integration

PASSWORD = "seeded-password-one"


@pytest.fixture
async def fresh_db(mongo_client, settings):
    """A database of its own: the demo user's email is unique per database."""
    name = f"{settings.mongodb_db}_seed_{uuid.uuid4().hex[:8]}"
    database = mongo_client[name]
    await migrations.migrate(database)
    yield database
    await mongo_client.drop_database(name)


async def test_the_demo_user_owns_the_demo_workspace(mongo_client, fresh_db, settings) -> None:
    dev = settings.replace(env="development")
    project, created = await seed_demo(ServiceContext(mongo_client, fresh_db, settings))
    assert created
    workspace_id = str(project["workspace_id"])
    user, outcome = await seed_demo_user(
        fresh_db, dev, workspace_id=workspace_id, password=PASSWORD
    )
    assert outcome == "created"
    assert (user["email"], user["email_verified"], user["demo"]) == (DEMO_EMAIL, True, True)
    assert await verify_password(user["password_hash"], PASSWORD)
    [membership] = await fresh_db.memberships.find({"user_id": user["_id"]}).to_list()
    assert (membership["workspace_id"], membership["role"]) == (workspace_id, "owner")
    # counted as the workspace's owner (the last-owner rule relies on the count)
    assert (await fresh_db.workspaces.find_one({"_id": workspace_id}))["owner_count"] == 1

    # Idempotent; a new password (a new state dir) replaces the old; a lost role comes back.
    again, outcome = await seed_demo_user(
        fresh_db, dev, workspace_id=workspace_id, password=PASSWORD
    )
    assert (again["_id"], outcome) == (user["_id"], "unchanged")
    # demoted the way the API does it: the owner count follows the role
    await fresh_db.memberships.update_one({"user_id": user["_id"]}, {"$set": {"role": "viewer"}})
    await fresh_db.workspaces.update_one({"_id": workspace_id}, {"$inc": {"owner_count": -1}})
    _, outcome = await seed_demo_user(
        fresh_db, dev, workspace_id=workspace_id, password="another-password-two"
    )
    assert outcome == "updated"
    stored = await fresh_db.users.find_one({"_id": user["_id"]})
    assert await verify_password(stored["password_hash"], "another-password-two")
    assert not await verify_password(stored["password_hash"], PASSWORD)
    assert (await fresh_db.memberships.find_one({"user_id": user["_id"]}))["role"] == "owner"
    assert (await fresh_db.workspaces.find_one({"_id": workspace_id}))["owner_count"] == 1
    assert await fresh_db.users.count_documents({"email": DEMO_EMAIL}) == 1


@pytest.mark.parametrize("env", ["test", "production"])
async def test_the_demo_user_is_refused_outside_development(
    mongo_client, fresh_db, settings, env
) -> None:
    project, _ = await seed_demo(ServiceContext(mongo_client, fresh_db, settings))
    with pytest.raises(NotDevelopment, match="only when PLANBOARD_ENV=development"):
        await seed_demo_user(
            fresh_db,
            settings.replace(env=env),
            workspace_id=str(project["workspace_id"]),
            password=PASSWORD,
        )
    assert await fresh_db.users.count_documents({}) == 0
    assert await fresh_db.memberships.count_documents({}) == 0


async def test_a_weak_password_or_a_real_account_are_refused(
    mongo_client, fresh_db, settings
) -> None:
    dev = settings.replace(env="development")
    project, _ = await seed_demo(ServiceContext(mongo_client, fresh_db, settings))
    workspace_id = str(project["workspace_id"])
    with pytest.raises(ValidationFailed):
        await seed_demo_user(fresh_db, dev, workspace_id=workspace_id, password="short")
    await fresh_db.users.insert_one(
        {"_id": "a" * 24, "email": DEMO_EMAIL, "name": "Someone", "password_hash": "x"}
    )
    with pytest.raises(Conflict, match="left alone"):
        await seed_demo_user(fresh_db, dev, workspace_id=workspace_id, password=PASSWORD)
    assert await fresh_db.memberships.count_documents({}) == 0
    assert (await fresh_db.users.find_one({"email": DEMO_EMAIL}))["password_hash"] == "x"


def seed_command(settings, tmp_path: Path, env: str, *args: str) -> subprocess.CompletedProcess:
    environ = dict(os.environ)
    environ.update(
        {
            "PLANBOARD_ENV": env,
            "PLANBOARD_SECRET_KEY": "s" * 40,
            "PLANBOARD_MONGODB_URI": settings.mongodb_uri,
            "PLANBOARD_MONGODB_DB": f"{settings.mongodb_db}_seedcli",
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "planboard", "seed", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


@pytest.mark.parametrize("env", ["production", "test"])
async def test_seed_command_refuses_the_demo_user_outside_development(
    mongo_client, settings, tmp_path, env
) -> None:
    password_file = tmp_path / "demo-password"
    result = seed_command(settings, tmp_path, env, "--demo-user", str(password_file))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: --demo-user is for development only (PLANBOARD_ENV is {env}); nothing was seeded"
    )
    assert not password_file.exists()
    database = mongo_client[f"{settings.mongodb_db}_seedcli"]
    assert await database.users.count_documents({"email": DEMO_EMAIL}) == 0
    # Without the flag the sample plan is seeded as before, and no user.
    plain = seed_command(settings, tmp_path, env)
    assert plain.returncode == 0, plain.stderr
    assert "demo project BOOK (Bookshelf)" in plain.stdout
    assert await database.users.count_documents({}) == 0


def test_seed_command_in_development_keeps_its_password_file(settings, tmp_path) -> None:
    """(That the printed login works is shown by tests/integration/test_quickstart.py.)"""
    password_file = tmp_path / "demo-password"
    first = seed_command(settings, tmp_path, "development", "--demo-user", str(password_file))
    assert first.returncode == 0, first.stderr
    password = password_file.read_text().strip()
    assert len(password) == 16 and password_file.stat().st_mode & 0o777 == 0o600
    assert f"demo user {DEMO_EMAIL} (" in first.stdout and str(password_file) in first.stdout
    again = seed_command(
        settings, tmp_path, "development", "--demo-user", str(password_file), "--json"
    )
    assert again.returncode == 0, again.stderr
    assert '"demo_user": {"email": "demo@planboard.test", "outcome": "unchanged"}' in again.stdout
    assert password_file.read_text().strip() == password
