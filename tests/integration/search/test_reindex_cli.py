"""``planboard reindex``, run as a subprocess: progress lines, a summary, idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from planboard.config import Settings
from tests.utils.api import new_project, new_task, new_user, new_workspace

ROOT = Path(__file__).resolve().parents[3]


def reindex(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANBOARD_")}
    env.update(
        PLANBOARD_ENV="test",
        PLANBOARD_MONGODB_URI=settings.mongodb_uri,
        PLANBOARD_MONGODB_DB=settings.mongodb_db,
        PLANBOARD_LOG_LEVEL="WARNING",
    )
    return subprocess.run(
        [sys.executable, "-m", "planboard", "reindex", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


async def test_reindex_command_rebuilds_one_workspace(client, db, settings) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    project = await new_project(client, owner, ws, name="Cli reindex")
    task = await new_task(client, owner, project["id"], title="Cli reindexed task")
    await db.search_index.delete_many({"workspace_id": ws})
    result = reindex(settings, "--workspace", ws)
    assert result.returncode == 0, result.stderr
    assert f"reindexing workspace {ws}" in result.stdout
    assert "tasks: 1 indexed" in result.stdout
    assert "done: 1 projects, 1 tasks, 0 comments indexed" in result.stdout
    assert await db.search_index.count_documents({"workspace_id": ws}) == 2
    assert await db.search_index.find_one({"_id": f"task:{task['id']}"}) is not None
    again = reindex(settings, "--workspace", ws)
    assert again.returncode == 0 and "0 stale entries removed" in again.stdout


def test_reindex_help_has_examples() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "planboard", "reindex", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0 and "planboard reindex --workspace" in result.stdout
