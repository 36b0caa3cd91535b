"""Install Debian packages the dev stack needs, once, when they are missing."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from planboard_devstack.paths import cache_dir
from planboard_devstack.process import ServerError


def ensure_command(command: str, package: str) -> str:
    """Return the path of ``command``, installing Debian ``package`` if it is missing."""
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServerError(
            f"{command!r} is not installed; install the Debian package {package!r} "
            f"(sudo apt-get install -y {package}) or point Planboard at an existing server"
        )
    lock_path = cache_dir() / "apt.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = shutil.which(command)
        if found:
            return found
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        log = cache_dir() / "apt.log"
        with open(log, "ab") as out:
            lists = Path("/var/lib/apt/lists")
            if not any(lists.glob("*Packages*")):
                subprocess.run(
                    ["apt-get", "update", "-q"], check=False, stdout=out, stderr=out, env=env
                )
            result = subprocess.run(
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
                check=False,
                stdout=out,
                stderr=out,
                env=env,
            )
            if result.returncode != 0:
                subprocess.run(
                    ["apt-get", "update", "-q"], check=False, stdout=out, stderr=out, env=env
                )
                result = subprocess.run(
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
                    check=False,
                    stdout=out,
                    stderr=out,
                    env=env,
                )
        if result.returncode != 0:
            raise ServerError(f"apt-get install {package} failed; see {log}")
    found = shutil.which(command)
    if not found:
        raise ServerError(f"{package} installed but {command!r} is still not on PATH")
    return found
