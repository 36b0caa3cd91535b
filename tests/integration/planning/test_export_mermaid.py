"""``GET /projects/{id}/export?format=mermaid``: the dependency graph and the gantt chart,
read back by mermaid's own parser (mermaid 11 under jsdom, pinned in tests/js) and, for
hostile text, rendered by real mermaid in headless Chromium."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.async_api import async_playwright

from planboard.domain.diagrams import DiagramTask, flowchart, gantt, shown_as
from planboard.domain.keys import PROJECT_KEY_RE
from planboard.domain.model import TaskStatus
from tests.integration.planning.test_schedule import network
from tests.utils.api import (
    by_ref,
    expect,
    expect_problem,
    import_plan,
    new_project,
    new_task,
    new_user,
)
from tests.utils.jstools import MermaidParser, ensure_installed

pytestmark = pytest.mark.integration

HOSTILE = [
    'Quote " and "]" and ["',
    "Backticks `code` and ```fences```",
    "<script>alert(1)</script><img src=x onerror=alert(2)>",
    "%%{init: {'securityLevel': 'loose', 'theme': 'dark'}}%%",
    "end",
    "subgraph x\tclass PB_1 evil",
    'click PB_1 href "javascript:alert(3)"',
    "A --> B; C -.-> D ==> E",
    "#quot; #35; &amp; &lt;b&gt; ﬂ°°60¶ß",
    "$$x^2$$ and **bold** and <br/> and \u2028 and \u2029 and \ufeff",
    "style PB_1 fill:#f00; classDef x color:red;",
    "Zürich ↔ 東京 — résumé 🚀 עברית",
]


@pytest.fixture(scope="module")
def mermaid() -> Iterator[MermaidParser]:
    parser = MermaidParser()
    yield parser
    parser.close()


async def export(client, user, project_id: str, **params: str):
    return await client.get(
        f"/api/v1/projects/{project_id}/export",
        params={"format": "mermaid", **params},
        headers=user.headers,
    )


def parsed(mermaid: MermaidParser, text: str) -> dict[str, Any]:
    answer = mermaid.parse(text)
    assert answer["ok"], f"mermaid rejected the export: {answer['error']}\n{text}"
    return answer


def gantt_text(task: dict[str, Any]) -> str:
    """A gantt task's text as shown, without the space our ``text :data`` format puts
    before the colon (mermaid keeps it)."""
    assert task["display"].endswith(" "), task
    return str(task["display"][:-1])


def label(vertex: dict[str, Any]) -> tuple[str, str]:
    """A node's two lines as mermaid displays them: ``ref: title`` and the facts."""
    first, facts = vertex["display"].split("<br>")
    return first, facts


async def test_the_sample_plan_as_a_dependency_graph(client, owner, workspace_id, mermaid):
    project = await import_plan(client, owner, workspace_id)
    tasks = await by_ref(client, owner, project["id"])
    response = await export(client, owner, project["id"])
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/vnd.mermaid; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="BOOK-graph.mmd"'
    text = await response.text()
    assert (await export(client, owner, project["id"], diagram="graph")).status == 200

    graph = parsed(mermaid, text)
    assert graph["type"] == "flowchart-v2" and graph["direction"] == "LR"
    assert graph["acc_title"] == "Bookshelf"
    assert graph["acc_description"] == "Task dependencies; critical path T1.3 → T2.2 (12 h)"
    vertices = {v["id"]: v for v in graph["vertices"]}
    node = {ref: task["key"].replace("-", "_") for ref, task in tasks.items()}
    assert set(vertices) == set(node.values())
    assert label(vertices[node["T1.3"]]) == (
        "T1.3: Authentication System",
        "in progress · 6 h",
    )
    assert label(vertices[node["T1.1"]]) == ("T1.1: Project Setup", "done · 1.5 h")
    assert [(s["display"], s["nodes"]) for s in graph["subgraphs"]] == [
        ("Phase 1: Foundation", [node["T1.1"], node["T1.2"], node["T1.3"]]),
        ("Phase 2: Core API", [node["T2.1"], node["T2.2"]]),
    ]
    edges = {(e["start"], e["end"]): e for e in graph["edges"]}
    assert set(edges) == {
        (node[blocker], node[ref])
        for ref, task in tasks.items()
        for blocker_id in task["blocked_by"]
        for blocker in [next(r for r, t in tasks.items() if t["id"] == blocker_id)]
    }
    critical = {v["id"] for v in graph["vertices"] if "critical" in v["classes"]}
    assert critical == {node["T1.3"], node["T2.2"]}
    thick = {pair for pair, edge in edges.items() if "stroke-width:4px" in edge["style"]}
    assert thick == {(node["T1.3"], node["T2.2"])}
    assert {v["id"]: [c for c in v["classes"] if c != "critical"] for v in graph["vertices"]} == {
        node["T1.1"]: ["done"],
        node["T1.2"]: ["done"],
        node["T1.3"]: ["in_progress"],
        node["T2.1"]: [],
        node["T2.2"]: ["blocked"],
    }
    assert all(v["link"] is None and v["label_type"] == "string" for v in graph["vertices"])


async def test_the_gantt_chart_draws_the_schedule(client, owner, workspace_id, mermaid):
    # nothing to draw: no estimate, no milestone, no due date
    empty = await new_project(client, owner, workspace_id, key="NODATE")
    await new_task(client, owner, empty["id"], title="Someday")
    problem = await expect_problem(await export(client, owner, empty["id"], diagram="gantt"), 409)
    assert "no task of project NODATE has an estimate, a due date" in problem["detail"]

    project = await import_plan(client, owner, workspace_id, key="GANTT")
    tasks = await by_ref(client, owner, project["id"])
    response = await client.patch(
        f"/api/v1/tasks/{tasks['T1.3']['id']}",
        json={"due_date": "2026-10-20"},
        headers=owner.headers,
    )
    await expect(response, 200)
    response = await client.patch(
        f"/api/v1/projects/{project['id']}",
        json={"start_date": "2026-10-01", "target_date": "2026-11-30"},
        headers=owner.headers,
    )
    await expect(response, 200)
    schedule = await expect(
        await client.get(f"/api/v1/projects/{project['id']}/schedule", headers=owner.headers), 200
    )

    response = await export(client, owner, project["id"], diagram="gantt")
    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="GANTT-gantt.mmd"'
    chart = parsed(mermaid, await response.text())
    assert chart["type"] == "gantt" and chart["title"] == "Bookshelf"
    assert chart["sections"][0] == "Project"
    assert set(chart["sections"]) == {"Project", "Phase 1: Foundation", "Phase 2: Core API"}
    drawn = {gantt_text(t): t for t in chart["tasks"]}
    assert (drawn["Start"]["start"], drawn["Target"]["start"]) == ("2026-10-01", "2026-11-30")
    critical = {t["key"] for t in schedule["critical_path"]}
    titles = {t["key"]: (ref, t["title"]) for ref, t in tasks.items()}
    # every task is a bar over its scheduled days, critical ones "crit"
    assert len(chart["tasks"]) == 2 + len(schedule["tasks"])
    for scheduled in schedule["tasks"]:
        ref, title = titles[scheduled["key"]]
        bar = drawn[f"[{ref}] {title}"]
        last_day = date.fromisoformat(scheduled["early_finish"][:10])
        assert (bar["start"], bar["end"], bar["milestone"]) == (
            scheduled["early_start"][:10],
            (last_day + timedelta(days=1)).isoformat(),  # inclusiveEndDates: the day after
            False,
        ), scheduled
        assert bar["crit"] == (scheduled["key"] in critical)
        assert bar["done"] == (tasks[ref]["status"] == "done")
    assert critical and drawn["[T1.1] Project Setup"]["done"]
    assert [t["active"] for t in chart["tasks"] if t["id"] == "GANTT_3"] == [True]
    # The graph shows the due dates too.
    graph = parsed(mermaid, await (await export(client, owner, project["id"])).text())
    facts = {v["id"]: label(v)[1] for v in graph["vertices"]}
    assert facts["GANTT_3"] == "in progress · 6 h · due 2026-10-20"


async def test_estimates_and_links_without_dates_make_bars_in_dependency_order(
    client, owner, workspace_id, mermaid
):
    # A (8 h) -> B (16 h) -> D (milestone); C (4 h) SS+4h after A, before D; no task has a
    # date, the project starts on Monday 2026-11-02 (Mon-Fri 09:00-17:00 UTC)
    project, a, b, c, d = await network(client, owner, workspace_id, "automatic")
    text = await (await export(client, owner, project["id"], diagram="gantt")).text()
    chart = parsed(mermaid, text)
    bars = [
        (t["id"], t["start"], t["end"], t["milestone"], t["crit"])
        for t in chart["tasks"]
        if t["section"] == "Unphased"
    ]
    node = {t["key"]: t["key"].replace("-", "_") for t in (a, b, c, d)}
    # earliest first; an end is the day after the last one (inclusiveEndDates)
    assert bars == [
        (node[a["key"]], "2026-11-02", "2026-11-03", False, True),
        (node[c["key"]], "2026-11-02", "2026-11-03", False, False),
        (node[b["key"]], "2026-11-03", "2026-11-05", False, True),
        (node[d["key"]], "2026-11-04", "2026-11-04", True, True),
    ]


async def test_bad_mermaid_parameters_are_422_naming_the_field(client, owner, workspace_id):
    project = await new_project(client, owner, workspace_id, name="Params")
    url = f"/api/v1/projects/{project['id']}/export"
    for params in (
        {"format": "csv", "diagram": "gantt"},
        {"diagram": "graph"},  # the default format is markdown
        {"format": "mermaid", "diagram": "pie"},
        {"format": "mermaid", "diagram": ""},
    ):
        response = await client.get(url, params=params, headers=owner.headers)
        await expect_problem(response, 422, "diagram")
    stranger = await new_user(client)
    await expect_problem(await export(client, stranger, project["id"]), 404)
    # A project without tasks is a graph with no node, still a valid document.
    response = await export(client, owner, project["id"])
    assert response.status == 200


async def test_hostile_names_and_titles_stay_text(client, owner, workspace_id, mermaid):
    project = await new_project(client, owner, workspace_id, name=HOSTILE[2], key="EVIL")
    phase_names = [HOSTILE[0], HOSTILE[3]]
    for name in phase_names:
        response = await client.post(
            f"/api/v1/projects/{project['id']}/phases", json={"name": name}, headers=owner.headers
        )
        await expect(response, 201)
    created = []
    for index, title in enumerate(HOSTILE):
        phase = phase_names[index % 3] if index % 3 < 2 else None
        body: dict[str, Any] = {
            "title": title,
            "estimate_hours": index + 1,
            "due_date": "2026-12-01",
        }
        if phase:
            body["phase"] = phase
        created.append(await new_task(client, owner, project["id"], **body))
    for blocker, blocked in itertools.pairwise(created):
        response = await client.post(
            f"/api/v1/tasks/{blocked['id']}/dependencies",
            json={"blocked_by": blocker["id"]},
            headers=owner.headers,
        )
        await expect(response, 201)

    graph = parsed(mermaid, await (await export(client, owner, project["id"])).text())
    assert graph["acc_title"] == HOSTILE[2]
    shown = {v["id"]: label(v)[0] for v in graph["vertices"]}
    assert shown == {t["key"].replace("-", "_"): f"{t['key']}: {t['title']}" for t in created}
    assert {s["display"] for s in graph["subgraphs"]} == set(phase_names)
    assert len(graph["edges"]) == len(created) - 1
    assert all(v["link"] is None for v in graph["vertices"])
    assert set(graph["class_defs"]) == {"done", "in_progress", "blocked", "cancelled", "critical"}

    chart = parsed(
        mermaid, await (await export(client, owner, project["id"], diagram="gantt")).text()
    )
    assert chart["title"] == HOSTILE[2]
    assert {gantt_text(t) for t in chart["tasks"]} == {
        f"[{t['key']}] {t['title']}" for t in created
    }
    assert set(chart["sections"]) == {*phase_names, "Unphased"}


# --- any text, through mermaid's parser --------------------------------------------------

TEXT = st.text(min_size=1, max_size=40)
KEYS = st.from_regex(PROJECT_KEY_RE, fullmatch=True) | st.sampled_from(
    [
        "END",
        "GRAPH",
        "SUBGRAPH",
        "STYLE",
        "CLASS",
        "CLASSDEF",
        "CLICK",
        "LINKSTYLE",
        "CALL",
        "DEFAULT",
        "FLOWCHART",
        "DIRECTION",
        "TB",
        "LR",
        "GANTT",
        "TITLE",
        "SECTION",
        "X0",
        "O0",
    ]
)
REFS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,10}", fullmatch=True) | st.sampled_from(
    ["title", "section", "gantt", "click", "end", "2026-10-01", "dateFormat", "excludes"]
)


@st.composite
def projects(draw: st.DrawFn) -> tuple[str, str, list[str], list[DiagramTask], list[str]]:
    key = draw(KEYS)
    phases = draw(st.lists(TEXT, max_size=3))
    count = draw(st.integers(min_value=1, max_value=6))
    refs = draw(st.lists(REFS, min_size=count, max_size=count, unique=True))
    day = date(2026, 10, 1)
    tasks = []
    for n in range(count):
        start = draw(st.none() | st.integers(0, 30))
        tasks.append(
            DiagramTask(
                id=f"id{n}",
                key=f"{key}-{n + 1}",
                ref=refs[n],
                title=draw(TEXT),
                status=draw(st.sampled_from(list(TaskStatus))),
                estimate_hours=draw(st.none() | st.floats(0, 1000, allow_nan=False)),
                phase=draw(st.none() | st.integers(0, 3)),
                blocked_by=tuple(f"id{b}" for b in sorted(draw(st.sets(st.integers(0, n - 1)))))
                if n
                else (),
                due=day + timedelta(days=draw(st.integers(0, 60))),
                start=None if start is None else day + timedelta(days=start),
                end=None
                if start is None
                else day + timedelta(days=start + draw(st.integers(0, 9))),
            )
        )
    path = [t.id for t in tasks if t.status.is_open][:2]
    return draw(TEXT), key, phases, tasks, path


# Hypothesis watches the global `random` state while it draws; the session's event loop
# (Kafka clients' jitter) moves it from the main thread meanwhile, which is not our strategy.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_any_text_parses_and_reads_back(mermaid) -> None:
    # In a thread: the session's event loop (relay, workers) keeps running meanwhile.
    await asyncio.to_thread(check_any_text, mermaid)


@settings(max_examples=150, deadline=None)
@given(project=projects())
def check_any_text(
    mermaid: MermaidParser, project: tuple[str, str, list[str], list[DiagramTask], list[str]]
) -> None:
    name, key, phases, tasks, path = project
    graph = parsed(mermaid, flowchart(name, key, phases, tasks, path, 1.0))
    assert graph["acc_title"] == shown_as(name.strip(" ") or key)
    vertices = {v["id"]: v for v in graph["vertices"]}
    assert set(vertices) == {t.key.replace("-", "_") for t in tasks}
    for task in tasks:
        shown = label(vertices[task.key.replace("-", "_")])[0]
        assert shown == shown_as(f"{task.ref}: {task.title}")
    assert [s["display"] for s in graph["subgraphs"]] == [
        shown_as(name.strip(" ") or f"Phase {i + 1}")
        for i, name in enumerate(phases)
        if any(t.phase == i for t in tasks)
    ]
    assert len(graph["edges"]) == sum(len(t.blocked_by) for t in tasks)
    assert all(v["link"] is None for v in vertices.values())

    drawn = [t for t in tasks if t.status is not TaskStatus.CANCELLED]
    text = gantt(name, key, phases, tasks, path)
    if not drawn:
        assert text is None
        return
    assert text is not None
    chart = parsed(mermaid, text)
    assert chart["title"] == shown_as(name.strip(" ") or key)
    assert [gantt_text(t) for t in chart["tasks"]] == [
        shown_as(f"[{t.ref}] {t.title}") for t in _gantt_order(drawn, phases)
    ]
    for shown, task in zip(chart["tasks"], _gantt_order(drawn, phases), strict=True):
        if task.start is not None and task.end is not None:
            assert (shown["start"], shown["end"], shown["milestone"]) == (
                task.start.isoformat(),
                (task.end + timedelta(days=1)).isoformat(),  # inclusiveEndDates
                False,
            )
        else:
            assert task.due is not None
            assert (shown["start"], shown["milestone"]) == (task.due.isoformat(), True)


def _gantt_order(tasks: list[DiagramTask], phases: list[str]) -> list[DiagramTask]:
    def section(task: DiagramTask) -> int:
        return task.phase if task.phase is not None and task.phase < len(phases) else len(phases)

    return sorted(tasks, key=section)  # stable: task order within a section


# --- rendered by real mermaid in a real browser ------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium missing: run `make system`")
async def test_hostile_titles_render_as_text_in_a_browser(tmp_path: Path) -> None:
    tasks = [
        DiagramTask(
            f"id{n}",
            f"EVIL-{n + 1}",
            f"T{n}",
            title,
            TaskStatus.TODO,
            1.0,
            n % 2,
            (f"id{n - 1}",) if n else (),
            date(2026, 10, 1 + n),
        )
        for n, title in enumerate(HOSTILE)
    ]
    documents = [
        flowchart(HOSTILE[2], "EVIL", HOSTILE[:2], tasks, ["id0", "id1"], 2.0),
        gantt(HOSTILE[2], "EVIL", HOSTILE[:2], tasks, ["id0", "id1"]),
    ]
    script = ensure_installed() / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = await browser.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            await page.set_content("<!doctype html><html><body><div id=out></div></body></html>")
            await page.add_script_tag(path=str(script))
            for index, document in enumerate(documents):
                seen = await page.evaluate(
                    """async ([id, text]) => {
                        mermaid.initialize({startOnLoad: false});
                        const {svg} = await mermaid.render(id, text);
                        const out = document.getElementById('out');
                        out.innerHTML = svg;
                        await new Promise((resolve) => setTimeout(resolve, 200));
                        return {
                          scripts: out.querySelectorAll('script, img, iframe, a').length,
                          handlers: [...out.querySelectorAll('*')].filter(
                            (e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
                          text: out.textContent,
                        };
                    }""",
                    [f"diagram{index}", document],
                )
                assert seen["scripts"] == 0 and seen["handlers"] == 0, seen
                assert "<script>alert(1)</script><img src=x onerror=alert(2)>" in seen["text"]
                assert "%%{init: {'securityLevel': 'loose', 'theme': 'dark'}}%%" in seen["text"]
            assert dialogs == []
        finally:
            await browser.close()
