"""The product's wheel carries the product only; the dev stack is a package of its own.

Both wheels are built here as a release would build them (``uv build``, the pinned uv and
its download cache, hatchling from pyproject.toml). The image installs the same project
the same way (tests/unit/test_dockerfile.py checks it syncs without the dev-stack group).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

from tests.utils.uv import find_uv, uv_env

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = (ROOT / "service" / "planboard", ROOT / "operator" / "planboard_operator")
DEV_ONLY = {"planboard-devstack", "aiosmtpd", "nx-27017"}


def _requirement_name(line: str) -> str:
    for stop in "<>=!~;[ (":
        line = line.split(stop, 1)[0]
    return line.strip().lower().replace("_", "-")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zipfile.ZipFile]:
    uv = find_uv()
    assert uv, "no uv: `make setup` installs the pinned one into the cache"
    out = tmp_path_factory.mktemp("wheels")
    result = subprocess.run(
        [uv, "build", "--all-packages", "--wheel", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        env=uv_env(),
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    built = {path.name.split("-", 1)[0]: zipfile.ZipFile(path) for path in out.glob("*.whl")}
    assert set(built) == {"planboard", "planboard_devstack"}, built
    return built


def _metadata(wheel: zipfile.ZipFile) -> tuple[list[str], list[str]]:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    message = HeaderParser().parsestr(wheel.read(name).decode())
    return message.get_all("Requires-Dist") or [], message.get_all("Provides-Extra") or []


def test_the_product_wheel_has_no_dev_stack(wheels: dict[str, zipfile.ZipFile]) -> None:
    names = wheels["planboard"].namelist()
    assert not [n for n in names if "devstack" in n.lower()]
    assert {n.split("/", 1)[0] for n in names} == {
        "planboard",
        "planboard_operator",
        "planboard-0.1.0.dist-info",
    }
    requires, extras = _metadata(wheels["planboard"])
    runtime = {_requirement_name(r) for r in requires if "extra ==" not in r}
    assert not runtime & DEV_ONLY
    assert not {_requirement_name(r) for r in requires} & DEV_ONLY
    assert extras == ["dev"]
    entry_points = wheels["planboard"].read("planboard-0.1.0.dist-info/entry_points.txt")
    assert "planboard-dev" not in entry_points.decode()


def test_the_product_wheel_has_every_file_of_the_product(
    wheels: dict[str, zipfile.ZipFile],
) -> None:
    """Data files too: the sample plan, py.typed, whatever a module reads next to itself."""
    names = set(wheels["planboard"].namelist())
    expected = {
        str(path.relative_to(package.parent))
        for package in PRODUCT_PACKAGES
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert expected - names == set()
    assert "planboard/data/sample-plan.md" in names
    assert "planboard/store/migrations.py" in names


def test_the_dev_stack_wheel_carries_its_scripts_and_dev_only_deps(
    wheels: dict[str, zipfile.ZipFile],
) -> None:
    """build-kube.sh is package data, so the control plane builds from an installed copy."""
    names = set(wheels["planboard_devstack"].namelist())
    assert "planboard_devstack/scripts/build-kube.sh" in names
    assert "planboard_devstack/cluster/build-images.sh" in names
    assert "planboard_devstack/cli.py" in names
    requires, _ = _metadata(wheels["planboard_devstack"])
    assert {"planboard", "aiosmtpd", "nx-27017"} <= {_requirement_name(r) for r in requires}


def _planboard(
    *args: str, env: dict[str, str] | None = None, code: str = ""
) -> subprocess.CompletedProcess[str]:
    program = code + "from planboard.cli import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", "import sys\n" + program, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=60,
    )


def test_planboard_dev_hands_over_to_the_dev_stack() -> None:
    result = _planboard("dev", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: planboard dev [-h] [--port PORT]")
    assert "--install-only" in result.stdout
    listing = _planboard("--help")
    assert "dev " in listing.stdout and "dev stack" in listing.stdout


def test_planboard_dev_checks_the_settings_first() -> None:
    result = _planboard("dev", "--run-dir", "/nonexistent/pb", env={"PLANBOARD_PORT": "nope"})
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "port" in result.stderr.lower()
    assert not Path("/nonexistent/pb").exists()


def test_planboard_dev_without_the_dev_stack_says_how_to_get_it() -> None:
    """As in the image: the product alone, no planboard_devstack on the path."""
    hide = (
        "sys.path[:] = [p for p in sys.path if not p.rstrip('/').endswith('/devstack')]\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('planboard_devstack') is None\n"
    )
    result = _planboard("dev", "--port", "9000", code=hide)
    assert result.returncode == 2
    assert "the dev stack is not installed here" in result.stderr
    assert "make run" in result.stderr and "planboard-devstack" in result.stderr
    assert result.stdout == ""
