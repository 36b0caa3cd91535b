"""Where the dev stack caches downloads/builds and keeps its runtime state."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def cache_dir() -> Path:
    """The one cache folder for slow downloads and builds (reused across runs)."""
    root = os.environ.get("PLANBOARD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "planboard"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host`` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
