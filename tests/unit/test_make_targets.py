"""`make run` installs only what running needs; `make test` everything (what make would do,
read from `make -n`, which prints every recipe without running it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_TOOLS = ("pytest", "playwright", "moto", "mypy", "schemathesis", "hypothesis", "ruff")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def planned(target: str, tmp_path: Path, *variables: str) -> list[str]:
    """The commands ``make <target>`` would run on a fresh checkout (``-B``: nothing built)."""
    # Not a sub-make of the `make test` that may be running this test.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(
        ["make", "-n", "-B", "--no-print-directory", target, "PYTEST_ARGS=", *variables],
        cwd=ROOT,
        env={**env, "PLANBOARD_CACHE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def syncs(commands: list[str]) -> list[str]:
    return [c for c in commands if re.search(r"/uv sync\b", c)]


def test_make_run_syncs_runtime_deps_and_the_dev_stack_only(tmp_path: Path) -> None:
    commands = planned("run", tmp_path)
    [sync] = syncs(commands)
    # the dev stack (devstack/, its own package) is a dependency group; no extras at all
    assert "--frozen" in sync and "--group devstack" in sync
    assert "--all-extras" not in sync and "--extra" not in sync and "--all-groups" not in sync
    # --inexact: a later `make run` keeps what `make test` installed (no broken venv).
    assert "--inexact" in sync
    assert "bash scripts/system-deps.sh run" in commands
    assert not any("system-deps.sh test" in c for c in commands)
    assert not any(tool in c for c in commands for tool in ("k8stools", "jstools", "bin/pytest"))
    assert commands[-1] == ".venv/bin/planboard dev"


def test_make_test_syncs_everything_exactly(tmp_path: Path) -> None:
    commands = planned("test", tmp_path)
    full = [s for s in syncs(commands) if "--all-extras" in s and "--all-groups" in s]
    assert full and "--inexact" not in full[0]
    assert commands.index(full[0]) < commands.index(
        ".venv/bin/ruff check service operator devstack tests"
    )
    assert ".venv/bin/python -m planboard_devstack.k8stools" in commands
    assert "bash scripts/system-deps.sh test" in commands
    assert ".venv/bin/python -m tests.utils.jstools" in commands
    assert ".venv/bin/pytest tests --ignore=tests/cluster" in [c.strip() for c in commands]
    # The cluster tests come last, in a session of their own, and clean up whatever happens.
    assert ".venv/bin/pytest tests/cluster" in commands[-1]
    assert commands[-1].index("pytest tests/cluster") < commands[-1].index("cluster down --check")


def test_cluster_tests_can_be_left_out(tmp_path: Path) -> None:
    commands = planned("test", tmp_path, "CLUSTER_TESTS=0")
    assert commands[-2] == ".venv/bin/pytest tests --ignore=tests/cluster"
    assert "left out (CLUSTER_TESTS=0)" in commands[-1]
    assert not any("pytest tests/cluster" in c or "devstack.cluster" in c for c in commands)


def test_every_dev_target_gets_the_dev_tools(tmp_path: Path) -> None:
    for target in ("setup", "lint", "test-unit", "test-integration", "test-compat", "bench"):
        planned_syncs = syncs(planned(target, tmp_path))
        assert any("--all-extras" in s and "--all-groups" in s for s in planned_syncs), target


def test_test_tools_are_extras_not_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[<>=;\[ ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    dev = {
        re.split(r"[<>=;\[ ]", d, maxsplit=1)[0].lower()
        for d in project["optional-dependencies"]["dev"]
    }
    for tool in TEST_TOOLS:
        assert tool not in runtime and tool in dev, tool


def test_the_dev_stack_is_a_package_of_its_own_not_a_runtime_dependency() -> None:
    """The dev servers' Python deps (the mail sink's aiosmtpd, the nx-27017 MongoDB server)
    belong to devstack/'s package, which the project reaches only through a dependency
    group: neither the wheel's metadata nor the image (--no-dev, no groups) carries it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    every = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        every += extra
    names = {re.split(r"[<>=;\[ ]", d, maxsplit=1)[0].lower() for d in every}
    assert not names & {"aiosmtpd", "nx-27017", "planboard-devstack"}
    assert pyproject["dependency-groups"]["devstack"] == ["planboard-devstack"]
    assert pyproject["tool"]["uv"]["sources"]["planboard-devstack"] == {"workspace": True}
    assert pyproject["tool"]["uv"]["workspace"]["members"] == ["devstack"]
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "service/planboard",
        "operator/planboard_operator",
    ]
    devstack = tomllib.loads((ROOT / "devstack" / "pyproject.toml").read_text())["project"]
    dev_names = {re.split(r"[<>=;\[ ]", d, maxsplit=1)[0].lower() for d in devstack["dependencies"]}
    assert {"planboard", "aiosmtpd", "nx-27017"} <= dev_names
    assert devstack["scripts"] == {"planboard-dev": "planboard_devstack.cli:main"}
    assert not (ROOT / "service" / "planboard" / "devstack").exists()
