"""What user-written text may hold: one rule for every path that stores it.

JSON bodies (api/schemas.py ``Trimmed``, api/planning_schemas.py ``MarkdownText``) and
Markdown plan imports (domain/plan.py) check titles, names and descriptions here, so a
value one path stores is never one another path refuses.

- **One-line text** (titles, names, checklist items, labels): no control characters
  (Unicode category Cc: U+0000 to U+001F, U+007F to U+009F) except the tab; surrounding
  whitespace is trimmed by the caller before the check.
- **Multi-line text** (Markdown descriptions, comments): the same, newlines and carriage
  returns allowed too.
"""

from __future__ import annotations

import re

MAX_TITLE = 500  # a task's title, a checklist item
MAX_PROJECT_NAME = 200
MAX_PHASE_NAME = 100
MAX_PROJECT_DESCRIPTION = 10_000
MAX_PHASES = 100  # per project
MAX_CHECKLIST = 200  # items per task

_LINE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_problem(text: str, *, multiline: bool = False) -> str | None:
    """Why ``text`` holds a character it may not (None when it holds none)."""
    found = (_TEXT_CONTROL if multiline else _LINE_CONTROL).search(text)
    if found is None:
        return None
    return f"must not contain control characters (U+{ord(found.group()):04X})"


def line_problem(text: str, max_length: int) -> str | None:
    """Why ``text`` is not acceptable one-line text of at most ``max_length`` characters
    (None when it is). Empty text is a problem: every such field needs a value."""
    if not text:
        return "must not be empty"
    if len(text) > max_length:
        return f"must be at most {max_length} characters"
    return control_problem(text)


def text_problem(text: str, max_length: int) -> str | None:
    """Why ``text`` is not acceptable multi-line text (None when it is; may be empty)."""
    if len(text) > max_length:
        return f"must be at most {max_length} characters"
    return control_problem(text, multiline=True)
