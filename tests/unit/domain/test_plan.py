"""Markdown plan documents: parsing, rendering, errors with line numbers, round trip."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planboard.domain.errors import PlanSyntaxError
from planboard.domain.links import Dependency, Lag, LagUnit, LinkType
from planboard.domain.model import (
    ChecklistItem,
    Complexity,
    PlanDocument,
    PlanPhase,
    PlanTask,
    Priority,
    TaskStatus,
)
from planboard.domain.plan import (
    _FIELD,
    MAX_PLAN_TASKS,
    _field_key,
    format_hours,
    parse_plan,
    render_plan,
    split_phase_heading,
)
from planboard.domain.text import MAX_CHECKLIST, MAX_PHASES
from tests.unit.domain.strategies import plan_documents

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


# Line numbers matter: the error cases below replace single lines of this plan.
BASE = """\
# Demo - Backend API Project Plan

## Overview

**Project Name**: Demo

## Tasks & Implementation Plan

### Phase 1: Start (Est: 3 hours)

#### T1.1: First
- [ ] **Status**: TODO
- **Estimated**: 1 hour
- **Dependencies**: None

#### T1.2: Second
- [ ] **Status**: TODO
- **Dependencies**: T1.1
"""


def with_line(number: int, text: str, base: str = BASE) -> str:
    lines = base.split("\n")
    lines[number - 1] = text
    return "\n".join(lines)


# --------------------------------------------------------------------------- sample and template


def test_sample_plan_parses_to_the_expected_document() -> None:
    doc = parse_plan(fixture("sample-plan.md"))
    assert doc.name == "Bookshelf"
    assert doc.description == "A lending library API for small reading clubs."
    assert doc.target_users == "Reading clubs and their members"
    assert doc.project_type == "Backend API"
    assert [(p.name, p.estimate_hours) for p in doc.phases] == [
        ("Phase 1: Foundation", 12.0),
        ("Phase 2: Core API", 10.0),
    ]
    first = doc.phases[0].tasks[0]
    assert first == PlanTask(
        ref="T1.1",
        title="Project Setup",
        status=TaskStatus.DONE,
        complexity=Complexity.LOW,
        estimate_hours=1.5,
        dependencies=(),
        checklist=(
            ChecklistItem("Initialize the service"),
            ChecklistItem("Setup linting and formatting"),
            ChecklistItem("Create basic README"),
        ),
    )
    assert first.line == 24
    loans = doc.phases[1].tasks[1]
    assert (loans.ref, loans.status, loans.dependencies) == (
        "T2.2",
        TaskStatus.BLOCKED,
        ("T1.3", "T2.1"),
    )
    assert [t.status for t in doc.tasks()] == [
        TaskStatus.DONE,
        TaskStatus.DONE,
        TaskStatus.IN_PROGRESS,
        TaskStatus.TODO,
        TaskStatus.BLOCKED,
    ]


def test_sample_plan_renders_back_to_itself_plus_the_progress_details() -> None:
    sample = fixture("sample-plan.md")
    rendered = render_plan(
        parse_plan(sample), generated=date(2026, 10, 2), updated=date(2026, 10, 20)
    )
    assert rendered == sample + (
        "\n### Phase Progress\n"
        "- Phase 1: Foundation → 66%\n"
        "- Phase 2: Core API → 0%\n"
        "\n### Current Focus\n"
        "- T1.3: Authentication System\n"
    )


def test_sample_plan_round_trips() -> None:
    doc = parse_plan(fixture("sample-plan.md"))
    again = parse_plan(render_plan(doc, generated=None, updated=None))
    assert again == doc
    assert [t.line for t in again.tasks()] != [0] * 5


def test_raw_template_yields_its_four_phases_and_concrete_tasks() -> None:
    doc = parse_plan(fixture("plan-template.md"))
    assert doc.name == "{{PROJECT_NAME}}"
    assert doc.project_type == "Backend API"
    assert [p.name for p in doc.phases] == [
        "Phase 1: Foundation",
        "Phase 2: Core API",
        "Phase 3: Advanced Features",
        "Phase 4: Testing, Monitoring & Deployment",
    ]
    assert all(p.estimate_hours is None for p in doc.phases)
    assert [[t.ref for t in p.tasks] for p in doc.phases] == [
        ["T1.1", "T1.2", "T1.3", "T1.4"],
        [],
        ["T3.1", "T3.2", "T3.3", "T3.4"],
        ["T4.1", "T4.2", "T4.3", "T4.4"],
    ]
    deploy = doc.phases[3].tasks[3]
    assert deploy.dependencies == ("T4.1", "T4.2", "T4.3")
    assert deploy.estimate_hours == 6
    assert deploy.checklist[5] == ChecklistItem("Deploy to {{HOSTING}}")
    assert doc.phases[2].tasks[0].dependencies == ()
    assert parse_plan(render_plan(doc)) == doc


# --------------------------------------------------------------------------- tolerance


def test_code_fences_and_other_sections_are_ignored() -> None:
    text = BASE.replace(
        "## Tasks & Implementation Plan\n",
        "## Architecture\n\n### Phase 9: Not here\n\n#### T9.1: Nor this\n\n"
        "## Tasks & Implementation Plan\n\n```mermaid\n## Overview\n#### T8.1: Fenced\n```\n",
    ).replace(
        "- **Dependencies**: T1.1\n",
        "- **Dependencies**: T1.1\n\n~~~\n#### T7.1: Also fenced\n~~~\n\n"
        "## API Endpoints\n```\nPOST /x\n```\n#### T6.1: After the section\n",
    )
    doc = parse_plan(text)
    assert [t.ref for t in doc.tasks()] == ["T1.1", "T1.2"]
    assert [p.name for p in doc.phases] == ["Phase 1: Start"]


def test_html_comments_are_ignored() -> None:
    text = BASE.replace(
        "#### T1.2: Second\n",
        "<!--\n#### T9: Commented out\n- **Status**: DONE\n-->\n"
        "<!-- #### T8: On one line -->\n"
        "#### T1.2: Second <!-- not part of the title -->\n",
    ).replace(
        "- **Estimated**: 1 hour\n",
        "- **Estimated**: <!-- was 3 --> 1 hour\n- **Description**:\n"
        "  - kept <!-- dropped\n  - also dropped\n  -->\n  - after the comment\n"
        "  - `<!-- in a code span -->` stays\n  - <!-->empty comment\n",
    )
    doc = parse_plan(text)
    assert [(t.ref, t.title) for t in doc.tasks()] == [("T1.1", "First"), ("T1.2", "Second")]
    first = doc.tasks()[0]
    assert first.estimate_hours == 1.0
    assert [item.text for item in first.checklist] == [
        "kept",
        "after the comment",
        "`<!-- in a code span -->` stays",
        "empty comment",
    ]


def test_a_comment_line_does_not_end_the_overview_description() -> None:
    text = with_line(5, "**Description**: first line\n<!-- a note -->\nsecond line")
    assert parse_plan(text).description == "first line second line"


def test_an_unclosed_comment_is_an_error_at_its_line() -> None:
    error = parse_error(BASE + "\n<!-- forgot to close\n#### T1.3: Hidden?\n")
    assert (error.line, error.detail) == (
        20,
        "an HTML comment opened here is never closed with -->",
    )


@pytest.mark.parametrize(
    ("number", "replacement", "message"),
    [
        (
            11,
            "#### T1.1: Nul\x00here",
            "task T1.1: the title must not contain control characters (U+0000)",
        ),
        (
            11,
            "#### T1.1: \x1b[31mred",
            "task T1.1: the title must not contain control characters (U+001B)",
        ),
        (11, "#### T1.1: del\x7f", "(U+007F)"),
        (11, "#### T1.1: c1\x85next", "(U+0085)"),
        (11, "#### T1.1: " + "x" * 501, "task T1.1: the title must be at most 500 characters"),
        (
            14,
            "- **Description**: esc\x1b",
            "task T1.1: a Description item must not contain control",
        ),
        (9, "### Phase\x00 1: Start", "phase name must not contain control characters (U+0000)"),
        (9, "### " + "P" * 101, "phase name must be at most 100 characters"),
        (5, "**Project Name**: De\x07mo", "the project name must not contain control characters"),
        (5, "**Project Name**: " + "D" * 201, "the project name must be at most 200 characters"),
    ],
)
def test_text_follows_the_api_rules(number: int, replacement: str, message: str) -> None:
    """The JSON API's rule (domain/text.py): refused with the line, never stored."""
    error = parse_error(with_line(number, replacement))
    assert error.line == number
    assert message in error.detail


def test_a_tab_and_unicode_separators_are_text() -> None:
    doc = parse_plan(with_line(11, "#### T1.1: tab\there\u2028line sep"))
    assert doc.tasks()[0].title == "tab\there\u2028line sep"


def test_too_many_phases_and_description_items() -> None:
    phases = "".join(f"### Phase {i}\n" for i in range(MAX_PHASES + 1))
    error = parse_error(BASE + phases)
    assert "too many phases: a project holds at most 100" in error.detail
    items = "".join(f"  - item {i}\n" for i in range(MAX_CHECKLIST + 1))
    error = parse_error(BASE + "- **Description**:\n" + items)
    assert error.line == 20 + MAX_CHECKLIST
    assert "at most 200 Description items" in error.detail


@pytest.mark.parametrize(
    ("heading", "estimate"),
    [
        ("### Phase 1: Start (Est: 12 hours)", 12.0),
        ("### Phase 1: Start (Est: 1.5h)", 1.5),
        ("### Phase 1: Start (Est: {{PHASE1_ESTIMATE}})", None),
        ("### Phase 1: Start", None),
        ("### Phase 1: Start (Est: TBD)", None),
    ],
)
def test_phase_estimates(heading: str, estimate: float | None) -> None:
    phase = parse_plan(with_line(9, heading)).phases[0]
    assert (phase.name, phase.estimate_hours) == ("Phase 1: Start", estimate)


@pytest.mark.parametrize(
    ("line", "estimate"),
    [
        ("- **Estimated**: 3 hours", 3.0),
        ("- **Estimated**: 3h", 3.0),
        ("- **Estimated**: 3.25 hours", 3.25),
        ("- **Estimated**: 1 hour", 1.0),
        ("- **Estimated**: 0", 0.0),
        ("- **Estimated**: {{ESTIMATE}}", None),
        ("- **Estimated**:", None),
    ],
)
def test_task_estimates(line: str, estimate: float | None) -> None:
    assert parse_plan(with_line(13, line)).tasks()[0].estimate_hours == estimate


@pytest.mark.parametrize(
    ("line", "dependencies"),
    [
        ("- **Dependencies**: None", ()),
        ("- **Dependencies**:", ()),
        ("- **Dependencies**: T1.1", ("T1.1",)),
        ("- **Dependencies**:  T1.1 ,T1.1,", ("T1.1",)),
        ("", ()),
    ],
)
def test_dependency_lists(line: str, dependencies: tuple[str, ...]) -> None:
    assert parse_plan(with_line(18, line)).tasks()[1].dependencies == dependencies


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("- [x] **Status**: DONE", TaskStatus.DONE),
        ("- [ ] **Status**: IN_PROGRESS", TaskStatus.IN_PROGRESS),
        ("- [ ] **Status**: in progress", TaskStatus.IN_PROGRESS),
        ("- **Status**: Blocked", TaskStatus.BLOCKED),
        ("- [ ] **Status**: CANCELLED", TaskStatus.CANCELLED),
        ("- [x] **Status**:", TaskStatus.DONE),
        ("- [ ] **Status:** TODO", TaskStatus.TODO),
        ("", TaskStatus.TODO),
    ],
)
def test_status_lines(line: str, status: TaskStatus) -> None:
    assert parse_plan(with_line(12, line)).tasks()[0].status == status


def test_titles_keep_unicode_colons_backticks_and_asterisks() -> None:
    title = "Ünïcode: `code` **bold** *em* — 東京 :: end"
    doc = parse_plan(with_line(11, f"####   T1.1:   {title}   "))
    assert doc.tasks()[0].title == title
    assert parse_plan(render_plan(doc)).tasks()[0].title == title


def test_checklist_items_with_and_without_checkboxes() -> None:
    text = with_line(
        14,
        "- **Dependencies**: None\n- **Description**: inline first\n"
        "  - plain\n  - [x] finished\n  - [X] also finished\n  - [ ] open\n\n    - nested\n"
        "  - [ ] [x] literally bracketed",
    )
    checklist = parse_plan(text).tasks()[0].checklist
    assert checklist == (
        ChecklistItem("inline first", False),
        ChecklistItem("plain", False),
        ChecklistItem("finished", True),
        ChecklistItem("also finished", True),
        ChecklistItem("open", False),
        ChecklistItem("nested", False),
        ChecklistItem("[x] literally bracketed", False),
    )
    rendered = render_plan(parse_plan(text))
    assert "  - [x] finished\n" in rendered
    assert "  - plain\n" in rendered
    assert "  - [ ] [x] literally bracketed\n" in rendered


def test_name_falls_back_to_the_title_and_description_may_wrap() -> None:
    text = with_line(5, "**Description**: first line\nsecond line\n\nnot description")
    doc = parse_plan(with_line(1, "# Big - Thing - Backend API Project Plan", text))
    assert doc.name == "Big - Thing"
    assert doc.description == "first line second line"
    assert doc.target_users is None
    assert doc.project_type is None


def test_render_formats_numbers_and_optional_fields() -> None:
    assert format_hours(1.5) == "1.5 hours"
    assert format_hours(3.0) == "3 hours"
    assert format_hours(1.0) == "1 hour"
    assert format_hours(0.25) == "0.25 hours"
    doc = PlanDocument(
        name="N",
        phases=(
            PlanPhase("Later", None, ()),
            PlanPhase(
                "Now",
                2.0,
                (
                    PlanTask("A1", "Line\nbreak", TaskStatus.CANCELLED, None, None, ("A2",)),
                    PlanTask("A2", "Two", TaskStatus.DONE),
                ),
            ),
        ),
    )
    text = render_plan(doc, generated=date(2030, 1, 2), updated=None)
    assert text.startswith("# N - Project Plan\n\n*Generated: 2030-01-02*\n\n## Overview\n")
    assert "### Later (Est: TBD)\n\n---\n\n### Now (Est: 2 hours)\n" in text
    assert "#### A1: Line break\n- [ ] **Status**: CANCELLED\n- **Dependencies**: A2\n" in text
    assert "- [x] **Status**: DONE\n" in text
    assert "**Status**: Completed (100% complete)" in text
    assert "**Completed**: 1 ▓▓▓▓▓▓▓▓▓▓ (100%)" in text
    assert "### Current Focus\n- None\n" in text


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("number", "replacement", "error_line", "message"),
    [
        (12, "- [ ] **Status**: STARTED", 12, "unknown status 'STARTED' for task T1.1"),
        (13, "- **Complexity**: Huge", 13, "unknown complexity 'Huge' for task T1.1"),
        (13, "- **Estimated**: -1 hours", 13, "must be between 0 and 10000 hours"),
        (13, "- **Estimated**: NaN hours", 13, "must be between 0 and 10000 hours"),
        (13, "- **Estimated**: 10001 hours", 13, "must be between 0 and 10000 hours"),
        (13, "- **Estimated**: two hours", 13, "bad estimate 'two hours' for task T1.1"),
        (13, "- **Estimated**: 2 days", 13, "bad estimate '2 days'"),
        (9, "### Phase 1: Start (Est: lots)", 9, "bad estimate 'lots' for phase 'Phase 1: Start'"),
        (13, "- **Status**: DONE", 13, "task T1.1 has a second Status line"),
        (16, "#### T1.1: Again", 16, "duplicate task ref T1.1 (first on line 11)"),
        (16, "#### Second task", 16, "must look like '#### T1.1: Title'"),
        (16, "#### T1.2:   ", 16, "task T1.2 has no title"),
        (18, "- **Dependencies**: T1.1, T9.9", 18, "task T1.2 depends on unknown task T9.9"),
        (18, "- **Dependencies**: T1.1 and T1.2", 18, "bad dependency 'T1.1 and T1.2'"),
        (14, "- **Dependencies**: T1.2", 14, "dependency cycle: T1.1 -> T1.2 -> T1.1"),
        (18, "- **Dependencies**: T1.2", 18, "dependency cycle: T1.2 -> T1.2"),
        (9, "", 11, "task T1.1 is outside a phase"),
        (7, "## Tasks", 1, "not a plan: no '## Tasks & Implementation Plan' section"),
    ],
)
def test_errors_point_at_the_offending_line(
    number: int, replacement: str, error_line: int, message: str
) -> None:
    with pytest.raises(PlanSyntaxError) as raised:
        parse_plan(with_line(number, replacement))
    assert raised.value.line == error_line
    assert message in raised.value.detail
    assert str(raised.value).startswith(f"line {error_line}: ")


def parse_error(text: str) -> PlanSyntaxError:
    with pytest.raises(PlanSyntaxError) as raised:
        parse_plan(text)
    return raised.value


def test_a_cycle_is_reported_at_its_earliest_task() -> None:
    text = BASE + "\n#### T1.3: Third\n- **Dependencies**: T1.2\n"
    error = parse_error(with_line(14, "- **Dependencies**: T1.3", text))
    assert (error.line, error.detail) == (14, "dependency cycle: T1.1 -> T1.3 -> T1.2 -> T1.1")


def test_not_a_plan_errors() -> None:
    assert parse_error("Just some notes\n").line == 1
    no_phases = parse_error("# X - Plan\n\n## Tasks & Implementation Plan\n\nTBD\n")
    assert (no_phases.line, "no '### Phase' headings" in no_phases.detail) == (3, True)
    no_tasks = parse_error("# X - Plan\n\n## Tasks & Implementation Plan\n\n### Phase 1: A\n")
    assert (no_tasks.line, "no '#### T1.1: Title' task" in no_tasks.detail) == (3, True)
    nameless = parse_error(with_line(5, "", with_line(1, "Intro")))
    assert nameless.line == 1
    assert "no '**Project Name**:'" in nameless.detail


def test_duplicate_phase_names_are_refused() -> None:
    error = parse_error(BASE + "\n### Phase 1: Start\n")
    assert (error.line, error.detail) == (20, "duplicate phase 'Phase 1: Start' (first on line 9)")


def test_too_many_tasks() -> None:
    tasks = "".join(f"#### T{i}: Task {i}\n" for i in range(MAX_PLAN_TASKS + 1))
    text = "# Big - Plan\n## Tasks & Implementation Plan\n### Phase 1: All\n" + tasks
    error = parse_error(text)
    assert error.line == 4 + MAX_PLAN_TASKS
    assert "at most 5000" in error.detail
    assert len(parse_plan(text.rsplit("####", 1)[0]).tasks()) == MAX_PLAN_TASKS


def test_documents_over_two_mebibytes_are_refused() -> None:
    padding = "\n## Notes\n" + "€" * 700_000 + "\n"  # 700k characters, 2.1 MB as UTF-8
    error = parse_error(BASE + padding)
    assert (error.line, error.detail) == (1, "plan is larger than 2 MiB")
    assert parse_plan(BASE + "\n## Notes\n" + "€" * 600_000 + "\n").name == "Demo"


# --------------------------------------------------------------------------- round trip property


def without_lines(doc: PlanDocument) -> PlanDocument:
    """The document with every ``line`` reset, to compare content explicitly."""
    return replace(
        doc,
        phases=tuple(
            replace(p, tasks=tuple(replace(t, line=0) for t in p.tasks)) for p in doc.phases
        ),
    )


# Whole documents are large inputs: generating them is slow on a busy machine by nature.
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(plan_documents(), st.none() | st.dates())
def test_render_then_parse_gives_back_the_document(doc: PlanDocument, day: date | None) -> None:
    parsed = parse_plan(render_plan(doc, generated=day, updated=day))
    assert parsed == doc
    assert without_lines(parsed).phases == doc.phases
    assert all(t.line > 0 for t in parsed.tasks())


# What a comment may hold: anything but its end. ``<!-->`` and ``<!--->`` are whole
# (empty) comments already, so text after ``<!--`` starting with ``>`` or ``->`` would be
# outside the comment.
COMMENT_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r"), max_size=40
).filter(lambda text: "-->" not in text and not text.startswith((">", "->")))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan_documents(),
    st.lists(st.tuples(st.integers(0, 10_000), st.booleans(), COMMENT_TEXT), max_size=8),
)
def test_comments_anywhere_between_lines_change_nothing(
    doc: PlanDocument, comments: list[tuple[int, bool, str]]
) -> None:
    """HTML comments (holding anything, headings and fields included) on lines of their own
    anywhere in a plan, or after a line's text, leave the document as it was."""
    lines = render_plan(doc).split("\n")
    for position, own_line, text in comments:
        at = position % (len(lines) + 1)
        comment = f"<!--{text}-->"
        if own_line or at == len(lines) or not lines[at].strip() or "`" in lines[at]:
            lines.insert(at, comment)
        else:  # after the text of a heading, field or item (not next to a code span)
            lines[at] = f"{lines[at]} {comment}"
    assert parse_plan("\n".join(lines)) == doc


def test_markdown_round_trip_keeps_comment_markers_in_text() -> None:
    doc = parse_plan(BASE)
    tricky = "Parse <!-- and --> and <\\!-- literally, `<!--` too"
    changed = replace(
        doc,
        name="Demo <!--",
        phases=(
            replace(
                doc.phases[0],
                name="Phase <!-- 1",
                tasks=(
                    replace(doc.tasks()[0], title=tricky, checklist=(ChecklistItem("<!-->"),)),
                    doc.tasks()[1],
                ),
            ),
        ),
    )
    rendered = render_plan(changed)
    assert "#### T1.1: Parse <\\!-- and --> and <\\\\!-- literally, `<\\!--` too\n" in rendered
    assert parse_plan(rendered) == changed


# --------------------------------------------------------------------------- scheduling bullets

# BASE with T1.2 scheduled and a milestone T1.3; line numbers matter as above.
SCHEDULED = BASE.replace(
    "- **Dependencies**: T1.1\n",
    "- **Priority**: urgent\n"  # 18
    "- **Start**: 2026-03-02\n"  # 19
    "- **Due**: 2026-03-06\n"  # 20
    "- **Dependencies**: T1.1 (SS+2d)\n",  # 21
) + (
    "\n#### T1.3: Launch\n"  # 23
    "- [ ] **Status**: TODO\n"  # 24
    "- **Milestone**: yes\n"  # 25
    "- **Due**: 2026-03-09\n"  # 26
    "- **Dependencies**: T1.2 (FF-4h), T1.1\n"  # 27
)


def test_scheduling_bullets_are_read() -> None:
    first, second, launch = parse_plan(SCHEDULED).tasks()
    assert (first.priority, first.start, first.due, first.milestone) == (None, None, None, False)
    assert second.priority is Priority.URGENT
    assert (second.start, second.due) == (date(2026, 3, 2), date(2026, 3, 6))
    assert second.links == (Dependency("T1.1", LinkType.SS, Lag(2, LagUnit.DAYS)),)
    assert second.dependencies == ("T1.1",)
    assert launch.milestone is True
    assert (launch.start, launch.due, launch.estimate_hours) == (None, date(2026, 3, 9), None)
    assert launch.links == (
        Dependency("T1.2", LinkType.FF, Lag(-4, LagUnit.HOURS)),
        Dependency("T1.1"),
    )
    assert launch.dependencies == ("T1.2", "T1.1")


def test_scheduling_bullets_are_written_in_the_template_style() -> None:
    rendered = render_plan(parse_plan(SCHEDULED))
    assert (
        "#### T1.2: Second\n- [ ] **Status**: TODO\n- **Priority**: Urgent\n"
        "- **Start**: 2026-03-02\n- **Due**: 2026-03-06\n- **Dependencies**: T1.1 (SS+2d)\n"
    ) in rendered
    assert (
        "#### T1.3: Launch\n- [ ] **Status**: TODO\n- **Milestone**: yes\n"
        "- **Due**: 2026-03-09\n- **Dependencies**: T1.2 (FF-4h), T1.1\n"
    ) in rendered
    assert parse_plan(rendered) == parse_plan(SCHEDULED)


def test_every_bullet_in_order() -> None:
    task = PlanTask(
        "M1",
        "Release",
        TaskStatus.DONE,
        Complexity.LOW,
        0.0,
        checklist=(ChecklistItem("tag it", True),),
        links=(Dependency("A1", LinkType.SF, Lag(0.25, LagUnit.DAYS)),),
        priority=Priority.LOW,
        start=date(2030, 1, 2),
        due=date(2030, 1, 2),
        milestone=True,
    )
    doc = PlanDocument("N", phases=(PlanPhase("P", None, (PlanTask("A1", "First"), task)),))
    assert (
        "#### M1: Release\n- [x] **Status**: DONE\n- **Priority**: Low\n- **Complexity**: Low\n"
        "- **Estimated**: 0 hours\n- **Milestone**: yes\n- **Start**: 2030-01-02\n"
        "- **Due**: 2030-01-02\n- **Dependencies**: A1 (SF+0.25d)\n- **Description**:\n"
        "  - [x] tag it\n"
    ) in render_plan(doc)
    assert parse_plan(render_plan(doc)) == doc


def test_plans_without_the_new_bullets_export_as_before() -> None:
    """The fixtures set none of the new fields, and export byte for byte as before: the
    sample plan is pinned above, the template by ``plan-template-export.md`` (what the
    renderer wrote before the scheduling bullets existed)."""
    for name in ("sample-plan.md", "plan-template.md"):
        doc = parse_plan(fixture(name))
        for task in doc.tasks():
            assert (task.priority, task.start, task.due, task.milestone) == (
                None,
                None,
                None,
                False,
            )
            assert all(link == Dependency(link.predecessor) for link in task.links)
    assert render_plan(parse_plan(fixture("plan-template.md"))) == fixture(
        "plan-template-export.md"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("- **Priority**: None", (None, None, None, False)),
        ("- **Priority**: {{PRIORITY}}", (None, None, None, False)),
        ("- **Priority**: HIGH", (Priority.HIGH, None, None, False)),
        ("- **Priority**: Medium", (Priority.MEDIUM, None, None, False)),
        ("- **Start**: TBD", (None, None, None, False)),
        ("- **Start date**: 2026-01-31", (None, date(2026, 1, 31), None, False)),
        ("- **Due Date:** 2028-02-29", (None, None, date(2028, 2, 29), False)),
        ("- **Due**: {{DUE_DATE}}", (None, None, None, False)),
        ("- **Milestone**: no", (None, None, None, False)),
        ("- **Milestone**: False", (None, None, None, False)),
        ("- **Milestone**:", (None, None, None, False)),
        ("- **Milestone**: TRUE", (None, None, None, True)),
    ],
)
def test_optional_values_and_unset_words(
    line: str, expected: tuple[Priority | None, date | None, date | None, bool]
) -> None:
    task = parse_plan(with_line(18, f"- **Dependencies**: T1.1\n{line}")).tasks()[1]
    assert (task.priority, task.start, task.due, task.milestone) == expected


def test_plain_dependency_lists_are_finish_to_start_without_lag() -> None:
    text = BASE + "\n#### T1.3: Third\n- **Dependencies**: T1.1, T1.2 (FS), T1.1, T1.2 (fs+0h)\n"
    third = parse_plan(text).tasks()[2]
    assert third.links == (Dependency("T1.1"), Dependency("T1.2"))
    assert "- **Dependencies**: T1.1, T1.2\n" in render_plan(parse_plan(text))


def test_plan_task_keeps_refs_and_links_in_step() -> None:
    by_refs = PlanTask("A", "a", dependencies=("X", "Y"))
    by_links = PlanTask("A", "a", links=(Dependency("X"), Dependency("Y")))
    assert by_refs == by_links
    assert by_refs.links == (Dependency("X"), Dependency("Y"))
    assert by_links.dependencies == ("X", "Y")
    typed = PlanTask("A", "a", dependencies=("X",), links=(Dependency("X", LinkType.SS),))
    assert typed.links[0].type is LinkType.SS
    with pytest.raises(ValueError, match="name different predecessors"):
        PlanTask("A", "a", dependencies=("Y",), links=(Dependency("X"),))


@pytest.mark.parametrize(
    ("number", "replacement", "error_line", "message"),
    [
        (18, "- **Priority**: P1", 18, "unknown priority 'P1' for task T1.2 (use Low, Medium"),
        (18, "- **Priority**: none\n- **Priority**: low", 19, "task T1.2 has a second Priority"),
        (19, "- **Start**: 2026-3-2", 19, "bad start date '2026-3-2' for task T1.2: write the"),
        (19, "- **Start**: 2026-02-30", 19, "bad start date '2026-02-30' for task T1.2"),
        (19, "- **Start**: 20260302", 19, "bad start date '20260302'"),
        (19, "- **Start**: 2026-W10-1", 19, "bad start date"),
        (19, "- **Start**: 2026-03-02T09:00+01:00", 19, "write the day as YYYY-MM-DD"),
        (19, "- **Start**: \uff12\uff10\uff12\uff16-03-02", 19, "bad start date"),
        (20, "- **Due**: next week", 20, "bad due date 'next week' for task T1.2"),
        (20, "- **Due**: 2026-03-01", 20, "task T1.2 starts on 2026-03-02, after its due date"),
        (21, "- **Dependencies**: T1.1 (XX)", 21, "task T1.2: bad link type 'XX' in 'T1.1 (XX)'"),
        (21, "- **Dependencies**: T1.1 (SS+2)", 21, "task T1.2: the lag in 'T1.1 (SS+2)' needs"),
        (21, "- **Dependencies**: T1.1 (SS+2w)", 21, "unknown lag unit 'w'"),
        (21, "- **Dependencies**: T1.1 (SS 2d)", 21, "task T1.2: bad dependency 'T1.1 (SS 2d)'"),
        (21, "- **Dependencies**: T1.1 SS", 21, "bad dependency 'T1.1 SS'"),
        (21, "- **Dependencies**: T1.1 (SS+10001d)", 21, "is over 10000"),
        (21, "- **Dependencies**: T1.1 (SS+0.00001h)", 21, "more than 4 decimals"),
        (21, "- **Dependencies**: T1.1 (SS+2d), T9", 21, "task T1.2 depends on unknown task T9"),
        (
            21,
            "- **Dependencies**: T1.1, T1.1 (SS)",
            21,
            "task T1.2: T1.1 is listed twice, as 'T1.1' and 'T1.1 (SS)': one link per predecessor",
        ),
        (21, "- **Dependencies**: T1.3 (SS)", 21, "dependency cycle: T1.2 -> T1.3 -> T1.2"),
        (21, "- **Dependencies**: T1.2 (SF-1h)", 21, "dependency cycle: T1.2 -> T1.2"),
        (25, "- **Milestone**: maybe", 25, "bad milestone value 'maybe' for task T1.3 (use yes"),
        (
            24,
            "- **Estimated**: 2 hours",
            25,
            "task T1.3 is a milestone, which takes no time: its estimate must be 0 or unset, "
            "not 2 hours",
        ),
        (
            24,
            "- **Start**: 2026-03-06",
            26,
            "task T1.3 is a milestone, a single day: its start 2026-03-06 and due date "
            "2026-03-09 must be the same",
        ),
        (23, "#### T" + "1" * 50 + ": Long ref", 23, "is longer than 50 characters"),
    ],
)
def test_scheduling_errors_point_at_the_line(
    number: int, replacement: str, error_line: int, message: str
) -> None:
    error = parse_error(with_line(number, replacement, SCHEDULED))
    assert error.line == error_line
    assert message in error.detail


def test_start_after_due_is_reported_at_the_later_line() -> None:
    text = with_line(
        19, "- **Due**: 2026-03-01", with_line(20, "- **Start**: 2026-03-02", SCHEDULED)
    )
    error = parse_error(text)
    assert (error.line, error.detail) == (
        20,
        "task T1.2 starts on 2026-03-02, after its due date 2026-03-01",
    )


def test_a_milestone_may_have_a_zero_estimate_and_one_day() -> None:
    text = with_line(24, "- **Estimated**: 0 hours\n- **Start**: 2026-03-09", SCHEDULED)
    launch = parse_plan(text).tasks()[2]
    assert (launch.estimate_hours, launch.start, launch.due) == (
        0.0,
        date(2026, 3, 9),
        date(2026, 3, 9),
    )


FIELD_VALUES = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"))


@settings(max_examples=300)
@given(
    st.sampled_from(["Priority", "Start", "Due", "Milestone", "Dependencies", "Estimated"]),
    FIELD_VALUES,
)
def test_any_scheduling_value_is_read_or_refused_with_its_line(field: str, value: str) -> None:
    """Whatever follows a bullet, the parser answers a document or a PlanSyntaxError at that
    line (or at the line of a rule it breaks together with another), never anything else."""
    text = with_line(27, f"- **Dependencies**: None\n- **{field}**: {value}", SCHEDULED)
    error: PlanSyntaxError | None = None
    try:
        parse_plan(text)
    except PlanSyntaxError as raised:
        error = raised
    assert error is None or error.line in (25, 26, 28)


# --------------------------------------------------------------------------- hostile lines

# The patterns the parser used before, quadratic on long runs of spaces: kept here as the
# oracle the linear versions must agree with.
OLD_FIELD = re.compile(r"^\*\*(?P<key>[^*]+?)\s*(?::\*\*|\*\*\s*:)\s*(?P<value>.*)$")
OLD_PHASE = re.compile(r"^(?P<name>.+?)(?:\s*\(Est:\s*(?P<estimate>[^()]*)\))?\s*$")
PIECES = st.sampled_from(["*", "**", ":", " ", "\t", "(", ")", "(Est:", "Est", "a", "1", "\u3000"])


@settings(max_examples=500)
@given(st.lists(PIECES, max_size=12).map("".join))
def test_field_and_phase_readers_agree_with_the_patterns_they_replace(text: str) -> None:
    old, new = OLD_FIELD.match(text), _FIELD.match(text)
    assert (old is None) == (new is None)
    if old is not None and new is not None:
        assert (_field_key(old["key"]), old["value"]) == (_field_key(new["key"]), new["value"])
    heading = text.strip()
    phase = OLD_PHASE.match(heading)
    if heading and phase is not None:
        assert split_phase_heading(heading) == (phase["name"].strip(), phase["estimate"])


@pytest.mark.parametrize(
    "line",
    [
        "### Phase" + " " * 200_000 + "x",
        "### Phase (Est:" + " " * 200_000 + "x",
        "- **Status" + " " * 200_000 + "x",
        "**Description" + "\t " * 100_000 + "x**",
        "- **Dependencies**: T1.1 (SS+1" + " " * 200_000 + "x",
        # backtick runs that never close, before a comment: code spans to look for
        "- **Description**: " + "".join("`" * n + " " for n in range(1, 1400)) + "<!-- -->",
    ],
)
def test_long_hostile_lines_take_linear_time(line: str) -> None:
    """A 2 MiB plan may hold a line of a million spaces: no pattern may backtrack over it
    quadratically (these took minutes before; linear, they take milliseconds)."""
    started = time.process_time()
    with contextlib.suppress(PlanSyntaxError):
        parse_plan(with_line(13, line).replace("**Project Name**: Demo", line))
    assert time.process_time() - started < 5
