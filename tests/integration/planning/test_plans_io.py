"""Plan documents: Markdown import, and export as Markdown (round trip), JSON and CSV."""

from __future__ import annotations

import csv
import io

import pytest

from planboard.domain.plan import parse_plan
from tests.utils.api import (
    MARKDOWN,
    SAMPLE_PLAN,
    by_ref,
    expect,
    expect_problem,
    import_plan,
    new_project,
    new_task,
    with_headers,
)

pytestmark = pytest.mark.integration

UNICODE_PLAN = """\
# Café Ωmega 🚀 - Backend API Project Plan

## Overview

**Project Name**: Café Ωmega 🚀

**Description**: Zürich ↔ 東京 — résumé naïve façade; עברית and العربية too.

**Target Users**: Ärzte & 医者

**Project Type**: Backend API

---

## Tasks & Implementation Plan

### Phase 1: Grundlagen 🧱 (Est: 7.25 hours)

#### U1.1: Datenbank einrichten — Straße & Größe
- [x] **Status**: DONE
- **Complexity**: Low
- **Estimated**: 0.25 hours
- **Dependencies**: None
- **Description**:
  - [x] Schéma ✓ erstellen
  - Índices für „Suche“
  - 日本語のチェック項目 🎌

#### U1.2: 認証システム (auth) «beta»
- [ ] **Status**: IN_PROGRESS
- **Complexity**: High
- **Estimated**: 7 hours
- **Dependencies**: U1.1
- **Description**:
  - Ελληνικά: κωδικός πρόσβασης
  - e\u0301 combining accent, ﬁ ligature, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢

### Phase 2: Ядро API ⚙️ (Est: TBD)

#### T2.1: Книги CRUD — שלום עולם
- [ ] **Status**: BLOCKED
- **Complexity**: Medium
- **Estimated**: 1.5 hours
- **Dependencies**: U1.1, U1.2
- **Description**:
  - مرحبا بالعالم
  - [x] 👩‍💻 emoji ZWJ sequence

#### T2.2: Abgesagt ✗
- [ ] **Status**: CANCELLED
- **Dependencies**: None

#### T2.3: À faire plus tard
- [ ] **Status**: TODO
- **Complexity**: Low
- **Estimated**: 2 hours
- **Dependencies**: T2.1
"""  # noqa: RUF001 - look-alike letters are the point of this plan


async def export(client, user, project_id, fmt="markdown"):
    response = await client.get(
        f"/api/v1/projects/{project_id}/export", params={"format": fmt}, headers=user.headers
    )
    assert response.status == 200, await response.text()
    return response


def essentials(tasks: dict[str, dict]) -> dict[str, tuple]:
    """What a round trip must keep, keyed by plan ref (dependencies as refs)."""
    refs = {t["id"]: ref for ref, t in tasks.items()}
    return {
        ref: (
            t["title"],
            t["status"],
            t["complexity"],
            t["estimate_hours"],
            t["phase"],
            sorted(refs[b] for b in t["blocked_by"]),
            [(c["text"], c["done"]) for c in t["checklist"]],
        )
        for ref, t in tasks.items()
    }


async def test_import_the_sample_plan(client, db, owner, workspace_id):
    project = await import_plan(client, owner, workspace_id)
    assert (project["name"], project["key"]) == ("Bookshelf", "BOOK")
    assert project["description"] == "A lending library API for small reading clubs."
    assert [(p["name"], p["estimate_hours"]) for p in project["phases"]] == [
        ("Phase 1: Foundation", 12.0),
        ("Phase 2: Core API", 10.0),
    ]
    tasks = await by_ref(client, owner, project["id"])
    assert list(tasks) == ["T1.1", "T1.2", "T1.3", "T2.1", "T2.2"]
    assert [t["key"] for t in tasks.values()] == [f"BOOK-{n}" for n in range(1, 6)]
    loans = tasks["T2.2"]
    assert (loans["status"], loans["complexity"], loans["estimate_hours"]) == (
        "blocked",
        "high",
        6.0,
    )
    assert loans["blocked_by"] == [tasks["T1.3"]["id"], tasks["T2.1"]["id"]]
    assert loans["checklist"] == [
        {"text": "Borrow and return a book", "done": False},
        {"text": "Overdue reminders by email", "done": False},
    ]
    assert tasks["T1.2"]["blocks"] == [tasks["T1.3"]["id"], tasks["T2.1"]["id"]]
    assert tasks["T2.1"]["ready"] is True and loans["ready"] is False
    assert await db.outbox.count_documents({"type": "task.created", "key": project["id"]}) == 5
    activity = await expect(
        await client.get(f"/api/v1/projects/{project['id']}/activity", headers=owner.headers), 200
    )
    assert {a["action"] for a in activity["items"]} == {"imported", "created"}
    second = await import_plan(client, owner, workspace_id, key="book2")
    assert second["key"] == "BOOK2"


async def test_import_refusals(client, db, owner, workspace_id):
    url = f"/api/v1/workspaces/{workspace_id}/projects/import"
    before = await db.projects.count_documents({"workspace_id": workspace_id})
    # JSON is read as a JSON export (docs/scheduling.md): this is not one
    response = await client.post(url, json={"plan": SAMPLE_PLAN}, headers=owner.headers)
    await expect_problem(response, 422, "format")
    response = await client.post(
        url, data=SAMPLE_PLAN, headers=with_headers(owner, **{"Content-Type": "text/plain"})
    )
    await expect_problem(response, 415)
    big = SAMPLE_PLAN + "\n" + ("x" * 1024 + "\n") * 2100
    response = await client.post(url, data=big.encode(), headers=with_headers(owner, **MARKDOWN))
    await expect_problem(response, 413)
    broken = SAMPLE_PLAN.replace(
        "- **Complexity**: High\n- **Estimated**: 6 hours",
        "- **Complexity**: Huge\n- **Estimated**: 6 hours",
        1,
    )
    response = await client.post(url, data=broken.encode(), headers=with_headers(owner, **MARKDOWN))
    problem = await expect_problem(response, 422)
    assert problem["line"] == broken.splitlines().index("- **Complexity**: Huge") + 1
    assert "Huge" in problem["detail"]
    response = await client.post(url, data=b"just text", headers=with_headers(owner, **MARKDOWN))
    assert (await expect_problem(response, 422))["line"] == 1
    response = await client.post(
        url, data=b"\xff\xfe\x00bad", headers=with_headers(owner, **MARKDOWN)
    )
    await expect_problem(response, 422, "body")
    response = await client.post(
        url,
        data=SAMPLE_PLAN.encode(),
        params={"key": "1BAD"},
        headers=with_headers(owner, **MARKDOWN),
    )
    await expect_problem(response, 422, "key")
    response = await client.post(
        url,
        data=SAMPLE_PLAN.encode(),
        params={"nope": "1"},
        headers=with_headers(owner, **MARKDOWN),
    )
    await expect_problem(response, 422, "nope")
    assert await db.projects.count_documents({"workspace_id": workspace_id}) == before
    await import_plan(client, owner, workspace_id, key="DUP")
    response = await client.post(
        url,
        data=SAMPLE_PLAN.encode(),
        params={"key": "DUP"},
        headers=with_headers(owner, **MARKDOWN),
    )
    await expect_problem(response, 409)


@pytest.mark.parametrize(
    ("bad", "line_of", "detail"),
    [
        (
            "\x00",
            "#### T1.2: Database Configuration",
            "task T1.2: the title must not contain control",
        ),
        ("\x1b[2J", "#### T1.2: Database Configuration", "(U+001B)"),
        ("\x7f", "#### T1.2: Database Configuration", "(U+007F)"),
    ],
)
async def test_import_refuses_what_patch_refuses(
    client, db, owner, workspace_id, bad: str, line_of: str, detail: str
):
    """One rule for titles whatever the path (domain/text.py): a control character that a
    PATCH refuses is refused by an import too, naming the task and the line; nothing is
    stored."""
    url = f"/api/v1/workspaces/{workspace_id}/projects/import"
    before = await db.projects.count_documents({"workspace_id": workspace_id})
    plan = SAMPLE_PLAN.replace(
        "T1.2: Database Configuration", f"T1.2: Database{bad} Configuration", 1
    )
    response = await client.post(url, data=plan.encode(), headers=with_headers(owner, **MARKDOWN))
    problem = await expect_problem(response, 422)
    assert problem["line"] == SAMPLE_PLAN.splitlines().index(line_of) + 1
    assert detail in problem["detail"]
    assert problem["errors"] == [{"field": f"line {problem['line']}", "message": problem["detail"]}]
    item = SAMPLE_PLAN.replace("  - Create basic README", f"  - Create{bad} README", 1)
    response = await client.post(url, data=item.encode(), headers=with_headers(owner, **MARKDOWN))
    problem = await expect_problem(response, 422)
    assert problem["line"] == SAMPLE_PLAN.splitlines().index("  - Create basic README") + 1
    assert "task T1.1: a Description item must not contain control" in problem["detail"]
    assert await db.projects.count_documents({"workspace_id": workspace_id}) == before
    # the same character through the JSON API
    project = await import_plan(client, owner, workspace_id)
    task = (await by_ref(client, owner, project["id"]))["T1.2"]
    for body in ({"title": f"Database{bad} Configuration"}, {"checklist": [{"text": f"a{bad}b"}]}):
        response = await client.patch(
            f"/api/v1/tasks/{task['id']}", json=body, headers=owner.headers
        )
        await expect_problem(response, 422, next(iter(body)))


async def test_html_comments_in_a_plan_are_not_imported(client, owner, workspace_id):
    plan = SAMPLE_PLAN.replace(
        "#### T1.2: Database Configuration",
        "<!--\n#### T9: Hidden task\n- [ ] **Status**: TODO\n-->\n"
        "<!-- #### T8: Also hidden -->\n#### T1.2: Database Configuration <!-- a note -->",
        1,
    )
    project = await import_plan(client, owner, workspace_id, plan)
    tasks = await by_ref(client, owner, project["id"])
    assert sorted(tasks) == ["T1.1", "T1.2", "T1.3", "T2.1", "T2.2"]
    assert tasks["T1.2"]["title"] == "Database Configuration"


async def test_comment_markers_in_titles_survive_export_and_import(client, owner, workspace_id):
    project = await new_project(client, owner, workspace_id, name="Markers <!--")
    title = "Strip <!-- and --> from `<!--` input <\\!-- too"
    task = await new_task(
        client, owner, project["id"], title=title, checklist=[{"text": "<!-- x -->"}]
    )
    text = await (await export(client, owner, project["id"])).text()
    assert "<!--" not in text
    copy = await import_plan(client, owner, workspace_id, text)
    assert copy["name"] == "Markers <!--"
    (imported,) = (await by_ref(client, owner, copy["id"])).values()
    assert imported["title"] == title == task["title"]
    assert imported["checklist"] == [{"text": "<!-- x -->", "done": False}]


@pytest.mark.parametrize("plan", [SAMPLE_PLAN, UNICODE_PLAN], ids=["sample", "unicode"])
async def test_round_trip_import_export_import_loses_nothing(client, owner, workspace_id, plan):
    first = await import_plan(client, owner, workspace_id, plan)
    response = await export(client, owner, first["id"])
    assert response.content_type == "text/markdown"
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="{first["key"]}-plan.md"'
    text = await response.text()
    assert parse_plan(text) == parse_plan(plan)  # the document itself is equal
    assert "**Completed**:" in text and "%)" in text
    second = await import_plan(client, owner, workspace_id, text)
    assert second["name"] == first["name"] and second["description"] == first["description"]
    assert [(p["name"], p["estimate_hours"]) for p in second["phases"]] == [
        (p["name"], p["estimate_hours"]) for p in first["phases"]
    ]
    before = essentials(await by_ref(client, owner, first["id"]))
    after = essentials(await by_ref(client, owner, second["id"]))
    assert after == before
    again = await (await export(client, owner, second["id"])).text()
    assert parse_plan(again) == parse_plan(text)
    progress = await expect(
        await client.get(f"/api/v1/projects/{second['id']}/progress", headers=owner.headers), 200
    )
    original = await expect(
        await client.get(f"/api/v1/projects/{first['id']}/progress", headers=owner.headers), 200
    )
    assert {k: v for k, v in progress.items() if k != "current_focus"} == {
        k: v for k, v in original.items() if k != "current_focus"
    }


async def test_a_project_built_through_the_api_exports_a_plan_that_imports(
    client, owner, workspace_id
):
    project = await new_project(client, owner, workspace_id, name="Built by hand", key="HAND")
    await expect(
        await client.post(
            f"/api/v1/projects/{project['id']}/phases", json={"name": "Only"}, headers=owner.headers
        ),
        201,
    )
    a = await new_task(
        client,
        owner,
        project["id"],
        title="With ref",
        plan_ref="X1",
        phase="Only",
        estimate_hours=1,
    )
    b = await new_task(
        client,
        owner,
        project["id"],
        title="No ref",
        phase="Only",
        checklist=[{"text": "[x] literal", "done": False}],
    )
    c = await new_task(client, owner, project["id"], title="Unphased", status="done")
    await expect(
        await client.post(
            f"/api/v1/tasks/{b['id']}/dependencies",
            json={"blocked_by": a["id"]},
            headers=owner.headers,
        ),
        201,
    )
    await expect(
        await client.post(
            f"/api/v1/tasks/{c['id']}/dependencies",
            json={"blocked_by": b["id"]},
            headers=owner.headers,
        ),
        201,
    )
    text = await (await export(client, owner, project["id"])).text()
    doc = parse_plan(text)
    assert [p.name for p in doc.phases] == ["Only", "Unphased"]
    assert [t.ref for t in doc.tasks()] == ["X1", "HAND-2", "HAND-3"]
    assert doc.tasks()[2].dependencies == ("HAND-2",)
    assert doc.tasks()[1].checklist[0].text == "[x] literal"
    assert doc.tasks()[1].checklist[0].done is False
    copy = await import_plan(client, owner, workspace_id, text)
    tasks = await by_ref(client, owner, copy["id"])
    assert tasks["HAND-3"]["blocked_by"] == [tasks["HAND-2"]["id"]]
    assert tasks["HAND-3"]["status"] == "done"


async def test_json_export_has_project_phases_and_tasks(client, owner, workspace_id):
    project = await import_plan(client, owner, workspace_id)
    response = await export(client, owner, project["id"], "json")
    assert response.content_type == "application/json"
    assert (
        response.headers["Content-Disposition"] == f'attachment; filename="{project["key"]}.json"'
    )
    body = await response.json()
    assert body["format"] == "planboard.project.v1"
    assert body["project"]["id"] == project["id"]
    assert [p["task_count"] for p in body["phases"]] == [3, 2]
    assert [t["plan_ref"] for t in body["tasks"]] == ["T1.1", "T1.2", "T1.3", "T2.1", "T2.2"]
    assert {"ready", "blocked_by_open", "phase"} <= set(body["tasks"][0])


async def test_csv_export_quotes_and_defuses_formulas(client, owner, workspace_id):
    project = await new_project(client, owner, workspace_id, name="Sheet", key="CSV")
    titles = ['=HYPERLINK("http://evil")', "+1+1", "-2", "@SUM(A1)", 'comma, "quote"', "plain ✓"]
    for title in titles:
        await new_task(
            client,
            owner,
            project["id"],
            title=title,
            description="line 1\nline 2",
            labels=["=x", "b"],
        )
    response = await export(client, owner, project["id"], "csv")
    assert response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="CSV.csv"'
    raw = await response.read()
    assert b"\r\n" in raw and raw.startswith(b"key,plan_ref,title,status")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    header, data = rows[0], rows[1:]
    assert header[:4] == ["key", "plan_ref", "title", "status"]
    by_title = [row[header.index("title")] for row in data]
    assert by_title == [
        '\'=HYPERLINK("http://evil")',
        "'+1+1",
        "'-2",
        "'@SUM(A1)",
        'comma, "quote"',
        "plain ✓",
    ]
    assert {row[header.index("labels")] for row in data} == {"'=x;b"}
    assert {row[header.index("description")] for row in data} == {"line 1\nline 2"}
    assert '"comma, ""quote"""' in raw.decode()


async def test_unknown_export_format_is_422(client, owner, workspace_id):
    project = await new_project(client, owner, workspace_id, name="Fmt")
    response = await client.get(
        f"/api/v1/projects/{project['id']}/export", params={"format": "xlsx"}, headers=owner.headers
    )
    await expect_problem(response, 422, "format")
