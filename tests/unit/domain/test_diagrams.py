"""The mermaid pictures as text (domain/diagrams.py); mermaid's own parser reads them in
tests/integration/planning/test_export_mermaid.py."""

from __future__ import annotations

import re
import string
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from planboard.domain.diagrams import (
    DiagramTask,
    flowchart,
    gantt,
    has_dates,
    mermaid_text,
    node_ids,
    parse_date,
    shown_as,
)
from planboard.domain.model import TaskStatus

ENTITY = re.compile(r"#(\d+);")
PHASES = ["Phase 1: Foundation", "Phase 2: Core API"]


def decode(text: str) -> str:
    return ENTITY.sub(lambda m: chr(int(m.group(1))), text)


def sample() -> list[DiagramTask]:
    """The sample plan's tasks (ids a..e), T1.3 and T2.2 on the critical path."""
    return [
        DiagramTask("a", "BOOK-1", "T1.1", "Project Setup", TaskStatus.DONE, 1.5, 0),
        DiagramTask("b", "BOOK-2", "T1.2", "Database", TaskStatus.DONE, 3, 0, ("a",)),
        DiagramTask("c", "BOOK-3", "T1.3", "Auth", TaskStatus.IN_PROGRESS, 6, 0, ("b",)),
        DiagramTask("d", "BOOK-4", "T2.1", "Books CRUD", TaskStatus.TODO, 4, 1, ("b",)),
        DiagramTask("e", "BOOK-5", "T2.2", "Loans", TaskStatus.BLOCKED, 6, 1, ("c", "d")),
    ]


@given(st.text())
def test_mermaid_text_keeps_nothing_mermaid_could_read_as_syntax(text: str) -> None:
    encoded = mermaid_text(text)
    assert decode(encoded) == shown_as(text)
    # What is left outside entity codes: letters, digits, space, plain punctuation, or
    # non-ASCII letters/symbols; never a quote, bracket, backtick, %, #, :, ;, <, > or newline.
    for char in ENTITY.sub("", encoded):
        assert char in string.ascii_letters + string.digits + " .,-_/()'!?+=*" or (
            ord(char) > 0x7F and char.isprintable() and char not in "\ufb02\u00b6"
        ), (char, text)


def test_mermaid_text_examples() -> None:
    assert mermaid_text("Setup (v2), done!") == "Setup (v2), done!"
    assert mermaid_text('a "b"') == "a #34;b#34;"
    assert mermaid_text("<script>") == "#60;script#62;"
    assert mermaid_text("%%{init}%%") == "#37;#37;#123;init#125;#37;#37;"
    assert mermaid_text("x\ny\u2028z") == "x#10;y#8232;z"
    assert mermaid_text("Zürich ↔ 東京 🚀") == "Zürich ↔ 東京 🚀"
    assert mermaid_text("ﬂ°°60¶ß") == "#64258;°°60#182;ß"  # mermaid's own entity markers
    # Unseeable controls: shown as U+FFFD (a browser would read #145; as a curly quote).
    assert mermaid_text("a\x00b\x91c\ud800") == "a\ufffdb\ufffdc\ufffd"
    assert shown_as("a\x00\tb") == "a\ufffd\tb"


def test_node_ids_come_from_keys_and_are_unique() -> None:
    tasks = [
        DiagramTask("1", "PB-1", "T1", "x"),
        DiagramTask("2", "not a key", "T2", "x"),
        DiagramTask("3", "PB-3", "T3", "x"),
    ]
    assert node_ids(tasks) == {"1": "PB_1", "2": "task_2", "3": "PB_3"}


def test_flowchart_of_the_sample_plan() -> None:
    text = flowchart("Bookshelf", "BOOK", PHASES, sample(), ["c", "e"], 12.0)
    lines = [line.strip() for line in text.splitlines()]
    assert lines[2] == "flowchart LR"
    assert "accTitle: Bookshelf" in lines
    assert "accDescr: Task dependencies#59; critical path T1.3 → T2.2 (12 h)" in lines
    assert 'subgraph phase_1 ["Phase 1#58; Foundation"]' in lines
    assert 'BOOK_3["T1.3#58; Auth<br/>in progress · 6 h"]' in lines
    edges = [line for line in lines if "-->" in line and not line.startswith("%%")]
    assert edges == [
        "BOOK_1 --> BOOK_2",
        "BOOK_2 --> BOOK_3",
        "BOOK_2 --> BOOK_4",
        "BOOK_3 --> BOOK_5",
        "BOOK_4 --> BOOK_5",
    ]
    assert "class BOOK_3,BOOK_5 critical" in lines
    assert "linkStyle 3 stroke:#d9480f,stroke-width:4px" in lines  # BOOK_3 --> BOOK_5
    assert "class BOOK_1,BOOK_2 done" in lines
    assert text.endswith("\n")


def test_flowchart_leaves_out_empty_phases_and_draws_loose_tasks_outside() -> None:
    tasks = [DiagramTask("a", "PB-1", "PB-1", "Alone", phase=None)]
    text = flowchart("P", "PB", ["Empty phase"], tasks, ["a"], 0.0)
    assert "subgraph" not in text
    assert '    PB_1["PB-1#58; Alone<br/>to do"]' in text
    assert "critical path PB-1 (0 h)" in text  # no estimate weighs nothing
    assert "linkStyle" not in text  # a one-task path has no edge


def test_flowchart_without_open_tasks_says_there_is_no_critical_path() -> None:
    tasks = [DiagramTask("a", "PB-1", "T1", "Done", TaskStatus.DONE)]
    text = flowchart("P", "PB", [], tasks, [], 0.0)
    assert "no open tasks, so no critical path" in text
    assert " critical\n" not in text.replace("classDef critical", "")


def test_gantt_needs_a_date() -> None:
    assert gantt("P", "PB", PHASES, sample(), ["c", "e"]) is None
    assert not has_dates(sample())
    cancelled = DiagramTask("x", "PB-9", "T9", "Gone", TaskStatus.CANCELLED, due=date(2026, 1, 1))
    assert not has_dates([cancelled])


def test_gantt_milestones_on_due_dates_bars_for_scheduled_tasks() -> None:
    tasks = sample()
    tasks[0] = DiagramTask(**{**_fields(tasks[0]), "due": date(2026, 10, 5)})
    tasks[2] = DiagramTask(**{**_fields(tasks[2]), "due": date(2026, 10, 20)})
    tasks[4] = DiagramTask(
        **{**_fields(tasks[4]), "start": date(2026, 10, 21), "end": date(2026, 10, 24)}
    )
    text = gantt("Bookshelf", "BOOK", PHASES, tasks, ["c", "e"], project_target=date(2026, 11, 30))
    assert text is not None
    lines = [line.strip() for line in text.splitlines()]
    assert "%% 2 task(s) without a date (or cancelled) are not shown" in lines
    assert lines[lines.index("gantt") + 1 :][:3] == [
        "title Bookshelf",
        "dateFormat YYYY-MM-DD",
        "inclusiveEndDates",
    ]
    assert "Target :milestone, project_target, 2026-11-30, 0d" in lines
    assert "[T1.1] Project Setup :milestone, done, BOOK_1, 2026-10-05, 0d" in lines
    assert "[T1.3] Auth :milestone, active, crit, BOOK_3, 2026-10-20, 0d" in lines
    assert "[T2.2] Loans :crit, BOOK_5, 2026-10-21, 2026-10-24" in lines
    assert lines.index("section Phase 1#58; Foundation") < lines.index(
        "section Phase 2#58; Core API"
    )


def test_gantt_scheduled_milestones_are_milestones_on_their_day() -> None:
    tasks = [
        DiagramTask("a", "PB-1", "T1", "Build", start=date(2026, 11, 2), end=date(2026, 11, 3)),
        DiagramTask(
            "b",
            "PB-2",
            "T2",
            "Ship",
            start=date(2026, 11, 3),
            end=date(2026, 11, 3),
            milestone=True,
        ),
    ]
    text = gantt("P", "PB", [], tasks, ["a", "b"])
    assert text is not None
    lines = [line.strip() for line in text.splitlines()]
    assert "inclusiveEndDates" in lines
    assert lines[-2:] == [
        "[T1] Build :crit, PB_1, 2026-11-02, 2026-11-03",
        "[T2] Ship :milestone, crit, PB_2, 2026-11-03, 0d",
    ]
    # only milestones: no bar, so no inclusive ends
    only = gantt("P", "PB", [], tasks[1:], [])
    assert only is not None and "inclusiveEndDates" not in only


def _fields(task: DiagramTask) -> dict[str, object]:
    return {name: getattr(task, name) for name in DiagramTask.__slots__}  # type: ignore[attr-defined]


def test_parse_date() -> None:
    assert parse_date("2026-10-31") == date(2026, 10, 31)
    for bad in ("2026-02-30", "31.10.2026", "", None, 20261031, "2026-10-31T00:00:00Z"):
        assert parse_date(bad) is None
