"""The npm packages the tests run (tests/js): installed once into the cache, never the repo.

``tests/js/package.json`` and its ``package-lock.json`` pin mermaid (and jsdom, the DOM it
needs to parse). ``npm ci`` installs exactly the lock into
``cache_dir()/npm/tests-js-<hash of the lock>/node_modules`` under a file lock, so a
changed lock gets a fresh folder, concurrent sessions never install twice, and a warm
cache costs nothing. ``make js-tools`` (a step of ``make test``) runs this module before
pytest starts; the test fixtures call :func:`ensure_installed` too, so a single test
file runs on its own.

:class:`MermaidParser` keeps one ``node tests/js/mermaid-check.mjs`` process and asks it
to parse documents with mermaid's own parser.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from planboard_devstack.paths import cache_dir

JS_DIR = Path(__file__).resolve().parents[1] / "js"
MANIFESTS = ("package.json", "package-lock.json")
CHECKER = JS_DIR / "mermaid-check.mjs"


class JsToolsError(RuntimeError):
    """Node.js/npm missing or the install failed; the message says what to do."""


def _command(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise JsToolsError(
            f"{name!r} is not installed: the mermaid export tests run mermaid's own parser "
            "on Node.js; install it with `make system` (Debian packages nodejs and npm)"
        )
    return found


def install_dir() -> Path:
    digest = hashlib.sha256()
    for name in MANIFESTS:
        digest.update((JS_DIR / name).read_bytes())
    return cache_dir() / "npm" / f"tests-js-{digest.hexdigest()[:16]}"


def ensure_installed() -> Path:
    """The folder whose ``node_modules`` holds the pinned packages (installed if needed)."""
    root = install_dir()
    marker = root / ".complete"
    if marker.is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    npm = _command("npm")
    _command("node")
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return root
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        for name in MANIFESTS:
            shutil.copyfile(JS_DIR / name, root / name)
        log_path = root / "npm-ci.log"
        started = time.monotonic()
        with open(log_path, "wb") as log:
            result = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=warn"],
                cwd=root,
                env={**os.environ, "npm_config_cache": str(root.parent / "npm-cache")},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        if result.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
            raise JsToolsError(f"npm ci in {root} failed; log {log_path}:\n{tail}")
        marker.write_text(f"npm ci took {time.monotonic() - started:.0f}s\n")
    return root


class MermaidParser:
    """mermaid's parser in a long-lived node process: ``parse(text)`` → what it understood.

    The answer is ``{"ok": False, "error": …}`` for a document mermaid rejects, else the
    diagram as mermaid's database holds it (see tests/js/mermaid-check.mjs).
    """

    def __init__(self) -> None:
        root = ensure_installed()
        self._process = subprocess.Popen(
            [_command("node"), str(CHECKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PLANBOARD_JS_ROOT": str(root)},
            text=True,
            encoding="utf-8",
        )

    def parse(self, text: str) -> dict[str, Any]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps({"text": text}) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            stderr = self._process.stderr.read() if self._process.stderr else ""
            raise JsToolsError(f"the mermaid checker stopped: {stderr[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def main() -> int:
    started = time.monotonic()
    try:
        root = ensure_installed()
    except JsToolsError as exc:
        print(f"js tools: {exc}", file=sys.stderr)
        return 1
    print(f"js tools: mermaid parser in {root} ({time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
