"""What a newcomer sees: ``planboard dev``'s banner (Swagger UI, the demo login and its
curl lines, run as printed) and docs/quickstart.md, whose commands run here verbatim.

One real ``planboard dev`` (API, relay and every worker group as processes) on the
session's servers, with its own database and topic prefix, in development mode as
``make run`` starts it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from planboard_devstack.paths import free_port, port_open

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "docs" / "quickstart.md"
BACKGROUND = "# In a second terminal"


@dataclass
class DevStack:
    url: str
    run_dir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.output)


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _ready(url: str) -> bool:
    result = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/readyz"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout == "200"


@pytest.fixture(scope="module")
def dev_stack(settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    port = free_port()
    run_dir = tmp_path_factory.mktemp("quickstart-dev")
    env = dict(os.environ)
    env.update(
        {
            "PLANBOARD_ENV": "development",
            "PLANBOARD_MONGODB_URI": settings.mongodb_uri,
            "PLANBOARD_MONGODB_DB": f"{settings.mongodb_db}_quickstart",
            "PLANBOARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "PLANBOARD_KAFKA_TOPIC_PREFIX": f"{settings.kafka_topic_prefix}qs.",
            # Its own Redis database: the suite's calls from 127.0.0.1 fill the shared
            # rate-limit buckets, which this stack's default (production) limits would refuse.
            "PLANBOARD_REDIS_URL": settings.redis_url.rsplit("/", 1)[0] + "/7",
            "PLANBOARD_SMTP_HOST": settings.smtp_host,
            "PLANBOARD_SMTP_PORT": str(settings.smtp_port),
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "planboard", "dev", "--port", str(port), "--run-dir", str(run_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack = DevStack(f"http://127.0.0.1:{port}", run_dir, process)
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: stack.output.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        # every process imports the package and the workers join their groups: slow under load
        _wait(lambda: "Press Ctrl-C" in stack.text() or process.poll() is not None, 240, "banner")
        assert process.poll() is None, stack.text()
        _wait(lambda: _ready(stack.url), 120, "/readyz")
        yield stack
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(90)
        finally:
            if process.poll() is None:
                process.kill()
        reader.join(10)
    assert process.returncode == 0, stack.text()[-3000:]
    assert "Stopped." in stack.text()


def bash(script: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


# --- the banner ------------------------------------------------------------------------


def test_the_banner_shows_docs_and_a_working_demo_login(dev_stack: DevStack) -> None:
    banner = dev_stack.text()
    url = dev_stack.url
    assert re.search(rf"Swagger UI\s+{url}/api/docs\n", banner)
    assert re.search(rf"OpenAPI\s+{url}/api/openapi.json\n", banner)
    password = (dev_stack.run_dir / "demo-password").read_text().strip()
    assert (dev_stack.run_dir / "demo-password").stat().st_mode & 0o077 == 0  # owner only
    assert re.search(
        rf"Demo login\s+demo@planboard\.test\s+password: {re.escape(password)}", banner
    )
    assert "project BOOK" in banner

    lines = banner.splitlines()
    start = lines.index("Log in as the demo user and list the sample plan's tasks:")
    login, tasks = (line.strip() for line in lines[start + 1 : start + 3])
    assert login.startswith("TOKEN=$(curl") and f"{url}/api/v1/auth/login" in login
    assert tasks.startswith("curl") and "/tasks" in tasks

    # Pasted as printed: logs in, then lists the sample plan's tasks.
    listed = bash(f"{login}\n{tasks}\n")
    rows = [json.loads(line) for line in listed.splitlines()]
    assert [(r["plan_ref"], r["key"]) for r in rows] == [
        ("T1.1", "BOOK-1"),
        ("T1.2", "BOOK-2"),
        ("T1.3", "BOOK-3"),
        ("T2.1", "BOOK-4"),
        ("T2.2", "BOOK-5"),
    ]
    # The demo user owns the Demo workspace; Swagger UI is served.
    mine = bash(f'{login}\ncurl -s {url}/api/v1/workspaces -H "Authorization: Bearer $TOKEN"\n')
    assert [(w["name"], w["role"]) for w in json.loads(mine)["items"]] == [("Demo", "owner")]
    assert bash(f"curl -s -o /dev/null -w '%{{http_code}}' {url}/api/docs") == "200"


def test_seeding_again_keeps_the_printed_login(dev_stack: DevStack, settings) -> None:
    """The dev command seeds at every start: same state dir, same password, still owner."""
    env = {
        "PLANBOARD_ENV": "development",
        "PLANBOARD_MONGODB_URI": settings.mongodb_uri,
        "PLANBOARD_MONGODB_DB": f"{settings.mongodb_db}_quickstart",
    }
    password_file = dev_stack.run_dir / "demo-password"
    again = json.loads(
        bash(f"{sys.executable} -m planboard seed --json --demo-user {password_file}", env)
    )
    assert again["project_created"] is False
    assert again["demo_user"] == {"email": "demo@planboard.test", "outcome": "unchanged"}


# --- docs/quickstart.md ------------------------------------------------------------------


@dataclass
class Block:
    code: str
    expected: str | None = None
    line: int = 0


def quickstart_blocks() -> list[Block]:
    """The page's ```sh blocks in order, each with the ```text block right after it."""
    blocks: list[Block] = []
    fence = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
    text = QUICKSTART.read_text()
    previous_end = None
    for match in fence.finditer(text):
        kind, body = match.group(1), match.group(2)
        line = text.count("\n", 0, match.start()) + 1
        if kind == "sh":
            blocks.append(Block(body, line=line))
        elif kind == "text" and blocks and text[previous_end : match.start()].strip() == "":
            blocks[-1].expected = body
        previous_end = match.end()
    return blocks


def matches(expected: str, actual: str) -> bool:
    """Equal JSON values, or equal text where ``…`` matches anything."""
    try:
        return bool(json.loads(expected) == json.loads(actual))
    except ValueError:
        pattern = ".*".join(re.escape(part) for part in expected.split("…"))
        return re.fullmatch(pattern, actual) is not None


def test_the_quickstart_runs_verbatim(dev_stack: DevStack, tmp_path: Path) -> None:
    blocks = quickstart_blocks()
    background = [b for b in blocks if b.code.startswith(BACKGROUND)]
    main = [b for b in blocks if not b.code.startswith(BACKGROUND)]
    assert len(background) == 1 and len(main) >= 8
    assert all(b.expected is not None for b in main if "curl" in b.code), "show what it prints"

    hook_port = free_port()
    env = {"PB": dev_stack.url, "HOOK": f"http://127.0.0.1:{hook_port}/hook"}
    receiver_log = tmp_path / "receiver.log"
    with receiver_log.open("w") as log:
        receiver = subprocess.Popen(
            ["bash", "-c", background[0].code],
            cwd=ROOT,
            env={**os.environ, "HOOK_PORT": str(hook_port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: port_open("127.0.0.1", hook_port), 30, "the quickstart's receiver")
        separator = "@@@ end of block @@@"
        script = "".join(f"{b.code}\necho '{separator}'\n" for b in main)
        outputs = bash(script, env, timeout=240).split(separator + "\n")[:-1]
        assert len(outputs) == len(main)
        for block, output in zip(main, outputs, strict=True):
            if block.expected is None:
                continue
            want, got = block.expected.splitlines(), output.splitlines()
            assert len(want) == len(got) and all(map(matches, want, got)), (
                f"docs/quickstart.md line {block.line}:\n{block.code}\n"
                f"--- the page shows:\n{block.expected}--- it printed:\n{output}"
            )
        _wait(lambda: "task.updated BOOK-3" in receiver_log.read_text(), 30, "the webhook")
        assert receiver_log.read_text().splitlines() == ["task.updated BOOK-3"]
    finally:
        receiver.terminate()
        receiver.wait(10)
