"""Project keys (``PB``) and task keys (``PB-12``)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container

PROJECT_KEY_RE = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
TASK_KEY_RE = re.compile(r"^([A-Z][A-Z0-9]{1,9})-([1-9][0-9]{0,8})$")


def derive_project_key(name: str, taken: Container[str] = ()) -> str:
    """A short upper-case key from a project name, unique among ``taken``.

    Several words give their initials ("Plan Board" → "PB"), one word its first
    four letters ("Bookshelf" → "BOOK"); a digit suffix resolves clashes.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.findall(r"[A-Za-z][A-Za-z0-9]*", ascii_name)
    if len(words) >= 2:
        base = "".join(w[0] for w in words[:6]).upper()
    elif words:
        base = words[0][:4].upper()
    else:
        base = "PRJ"
    if len(base) < 2:
        base = (base + "X")[:2]
    candidate = base
    suffix = 1
    while candidate in taken:
        suffix += 1
        candidate = f"{base[: 10 - len(str(suffix))]}{suffix}"
    return candidate


def task_key(project_key: str, seq: int) -> str:
    return f"{project_key}-{seq}"


def parse_task_key(value: str) -> tuple[str, int] | None:
    match = TASK_KEY_RE.match(value)
    if match is None:
        return None
    return match.group(1), int(match.group(2))
