"""The ``planboard`` command, run as a subprocess: help with examples on every subcommand,
``openapi``, ``import`` and ``seed`` with progress, and one-line errors."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from planboard.cli import build_parser
from planboard.config import Settings
from planboard.progress import ConsoleProgress, Step, bar
from planboard.store import workspaces
from planboard.store.document import Document

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_PLAN = ROOT / "tests" / "fixtures" / "sample-plan.md"
PLANBOARD = [sys.executable, "-m", "planboard"]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANBOARD_")}
    env.update(
        PLANBOARD_ENV="test",
        PLANBOARD_MONGODB_URI=settings.mongodb_uri,
        PLANBOARD_MONGODB_DB=settings.mongodb_db,
        PLANBOARD_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def _planboard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "planboard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)  # type: ignore[arg-type]


def test_every_subcommand_has_help_with_examples() -> None:
    names = _subcommands()
    assert {"openapi", "import", "seed", "backup", "restore", "migrate"} <= set(names)
    for name in names:
        result = _planboard(name, "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert "examples:" in result.stdout, name
        assert f"planboard {name}" in result.stdout.split("examples:", 1)[1], name


def test_openapi_prints_the_committed_document_and_writes_postman(tmp_path: Path) -> None:
    result = _planboard("openapi")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads((ROOT / "docs/openapi.json").read_text())

    out, postman = tmp_path / "spec.json", tmp_path / "pm.json"
    result = _planboard("openapi", "--output", str(out), "--postman", str(postman))
    assert result.returncode == 0, result.stderr
    assert out.read_text() == (ROOT / "docs/openapi.json").read_text()
    assert postman.read_text() == (ROOT / "docs/planboard.postman_collection.json").read_text()


async def test_import_a_plan_with_progress_lines(settings: Settings, db: Any) -> None:
    workspace = await workspaces.create(db, "CLI import")
    result = _planboard(
        "import",
        str(SAMPLE_PLAN),
        "--workspace",
        str(workspace["_id"]),
        "--key",
        "CLI",
        env=_env(settings),
    )
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout and "project CLI" in result.stdout
    lines = result.stderr.splitlines()
    # Not a terminal: plain lines, no bar and no carriage returns.
    assert lines[0].startswith("import: read "), lines
    assert lines[-1] == "import: done 4/4", lines
    assert "\r" not in result.stderr and "[#" not in result.stderr
    project = await db.projects.find_one({"workspace_id": str(workspace["_id"]), "key": "CLI"})
    assert project is not None
    assert await db.tasks.count_documents({"project_id": project["_id"]}) > 0


async def test_import_draws_a_bar_on_a_terminal(settings: Settings, db: Any) -> None:
    workspace = await workspaces.create(db, "CLI tty")
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [*PLANBOARD, "import", str(SAMPLE_PLAN), "--workspace", str(workspace["_id"])],
            stdout=subprocess.PIPE,
            stderr=follower,
            env=_env(settings),
            timeout=120,
            check=False,
            cwd=ROOT,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    shown = b"".join(chunks).decode()
    assert result.returncode == 0, shown
    assert "\r\x1b[K" in shown and "[####" in shown and "100%" in shown, shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["tests/fixtures/sample-plan.md", "--workspace", "000000000000000000000000"],
            "no workspace",
        ),
        (["/nonexistent/plan.md", "--workspace", "000000000000000000000000"], "No such file"),
        (["README.md", "--workspace", "000000000000000000000000"], "PlanSyntaxError"),
    ],
)
def test_import_errors_are_one_line_and_non_zero(
    settings: Settings, db: Any, args: list[str], message: str
) -> None:
    result = _planboard("import", *args, env=_env(settings))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    # the progress lines so far, then the error: one line, no traceback
    errors = [line for line in lines if not line.startswith("import: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("planboard import: error: ") and message in errors[0], lines
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2() -> None:
    result = _planboard("import")
    assert result.returncode == 2
    assert "the following arguments are required" in result.stderr


async def test_seed_shows_progress_and_is_idempotent(
    settings: Settings, mongo_client: AsyncMongoClient[Document]
) -> None:
    env = _env(settings, PLANBOARD_MONGODB_DB=settings.mongodb_db + "_seed")
    try:
        assert _planboard("migrate", env=env).returncode == 0
        first = _planboard("seed", env=env)
        assert first.returncode == 0, first.stderr
        assert "created" in first.stdout
        assert first.stderr.splitlines()[-1] == "seed: seed demo workspace 1/1"
        again = _planboard("seed", env=env)
        assert again.returncode == 0 and "already present" in again.stdout
    finally:
        await mongo_client.drop_database(settings.mongodb_db + "_seed")


def test_progress_helper() -> None:
    assert bar(0, 4) == "[........................]   0%"
    assert bar(2, 4).startswith("[" + "#" * 12 + "." * 12 + "]")
    plain = io.StringIO()
    progress = ConsoleProgress("backup", plain, interval_s=3600)
    for done in range(101):
        progress(Step("dump", "tasks", done, 100))
    progress(Step("upload", "archive", 10))
    progress.close()
    # start and end of the step, plus the open-ended one: nothing in between.
    assert plain.getvalue().splitlines() == [
        "backup: dump tasks 0/100",
        "backup: dump tasks 100/100",
        "backup: upload archive 10 bytes",
    ]
