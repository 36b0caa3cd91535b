"""The uv the Makefile installs (or one on PATH), for tests that install or build."""

from __future__ import annotations

import glob
import os
import shutil

from planboard_devstack.paths import cache_dir


def find_uv() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    candidates = sorted(glob.glob(str(cache_dir() / "tools" / "uv-*" / "bin" / "uv")))
    return candidates[-1] if candidates else None


def uv_env() -> dict[str, str]:
    """The environment for uv: the project's shared download cache."""
    return {**os.environ, "UV_CACHE_DIR": str(cache_dir() / "uv-cache")}
