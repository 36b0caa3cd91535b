"""The dev banner's paste-ready lines work with jq and, where jq is missing, with Python.
(Against a running stack: tests/integration/test_quickstart.py.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from planboard_devstack import dev
from planboard_devstack.stack import Endpoints

SEEDED = dev.Seeded("6b11f8bc0a44570295525176", "BOOK", "demo@planboard.test", "R55x-Hzb4_AzMkMH")
ENDPOINTS = Endpoints("mongodb://127.0.0.1:27017/", "127.0.0.1:9092", "redis://x", "h", 1, None)


def token_of(login_line: str) -> str:
    """Run the login line's JSON filter on a login answer."""
    command = login_line.split("| ", 1)[1].removesuffix(")")
    result = subprocess.run(
        ["bash", "-c", command],
        input='{"access_token": "eyJ.a.b", "token_type": "bearer"}',
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.parametrize("jq", [True, False])
def test_login_line_extracts_the_token(monkeypatch: pytest.MonkeyPatch, jq: bool) -> None:
    if jq and shutil.which("jq") is None:
        pytest.skip("jq is not installed (make system installs it)")
    if not jq:
        monkeypatch.setattr(dev.shutil, "which", lambda name: None)
    login, tasks = dev.try_lines("http://127.0.0.1:8080", SEEDED)
    assert login.startswith("TOKEN=$(curl -s http://127.0.0.1:8080/api/v1/auth/login ")
    assert '"password": "R55x-Hzb4_AzMkMH"' in login
    assert token_of(login) == "eyJ.a.b"
    assert tasks.startswith(
        'curl -s "http://127.0.0.1:8080/api/v1/projects/6b11f8bc0a44570295525176/tasks"'
    )
    assert ("| jq" in tasks) is jq


def test_banner_without_a_demo_login_says_why() -> None:
    banner = dev._banner(
        ENDPOINTS, "http://127.0.0.1:8080", Path("/x"), ["jobs"], dev.Seeded("p", "BOOK")
    )
    assert "Demo login    none (seeded only when PLANBOARD_ENV=development)" in banner
    assert "Swagger UI  http://127.0.0.1:8080/api/docs" in banner
    assert "TOKEN=" not in banner
