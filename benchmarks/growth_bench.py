"""How the main paths' cost grows with the data: 1k → 10k → 100k tasks.

Same set-up as ``http_bench.py`` (its own dev servers, one ``planboard serve``, wrk in a
separate process), but one workspace is grown step by step through the HTTP API (bulk
creates of 500) and the same paths are measured at every size, at one connection count:

- the measured project ``G`` holds min(size, 4,000) tasks; the rest of the size sits in
  other projects of the same workspace, up to 4,000 each (creates go to a new project per
  size, since a run adds ~3,000 tasks and a project holds at most 10,000);
- GET a task by id (cached), GET the project's tasks with a filter (page of 50),
  GET the project's progress, POST a task into ``G``, PATCH a task's status, and search
  (after ``planboard reindex`` of the workspace: no search worker runs).

Writes a Markdown table into ``docs/benchmarks.md`` under "Growth: 1k to 100k tasks".

    .venv/bin/python benchmarks/growth_bench.py                       # 1000,10000,100000
    .venv/bin/python benchmarks/growth_bench.py --sizes 1000,10000 --duration 5 --no-doc
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench as hb
from procs import write_section

from planboard_devstack.paths import free_port
from planboard_devstack.stack import InfraStack

SECTION = "Growth: 1k to 100k tasks"
PROJECT_CAP = 4_000


def grow(base: str, token: str, ws: str, projects: list[dict[str, int | str]], size: int) -> float:
    """Add tasks until the workspace holds ``size``; return the seconds it took."""
    began = time.perf_counter()
    total = sum(int(p["tasks"]) for p in projects)
    while total < size:
        target = next((p for p in projects if int(p["tasks"]) < PROJECT_CAP), None)
        if target is None:
            index = len(projects)
            answer = hb.ok(
                *hb.call(
                    base,
                    "POST",
                    f"/api/v1/workspaces/{ws}/projects",
                    {"name": f"Filler {index}", "key": f"F{index}"},
                    token,
                ),
                "filler project",
            )
            target = {"id": answer["id"], "tasks": 0}
            projects.append(target)
        add = min(size - total, PROJECT_CAP - int(target["tasks"]))
        hb.bulk_tasks(base, token, str(target["id"]), add, f"G{len(projects)}")
        target["tasks"] = int(target["tasks"]) + add
        total += add
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    flags = " ".join(sys.argv[1:])
    command = f".venv/bin/python benchmarks/growth_bench.py {flags}".rstrip()
    wrk = hb.ensure_wrk()
    rows: list[tuple[int, int, float, float, list[hb.Point]]] = []

    with tempfile.TemporaryDirectory(prefix="pb-growth-") as tmp:
        stack = InfraStack(Path(tmp) / "servers")
        print("starting dev servers …", flush=True)
        endpoints = stack.start()
        api = None
        try:
            port = free_port()
            env = {
                **os.environ,
                **endpoints.env(),
                "PLANBOARD_ACCESS_LOG": "false",
                "PLANBOARD_RATE_LIMIT_ENABLED": "false",
                "PLANBOARD_LOG_LEVEL": "WARNING",
            }
            subprocess.run(
                [hb.PLANBOARD, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL
            )
            api = hb.start([hb.PLANBOARD, "serve", "--port", str(port)], env, Path(tmp) / "api.log")
            base = f"http://127.0.0.1:{port}"
            hb.wait_http(base + "/readyz")
            email, password = f"growth-{os.getpid()}@example.com", "bench-Pa55word!-k7"
            hb.ok(
                *hb.call(
                    base,
                    "POST",
                    "/api/v1/auth/register",
                    {"email": email, "password": password, "name": "Growth"},
                ),
                "register",
            )
            token = hb.login(base, email, password)
            ws = hb.ok(*hb.call(base, "POST", "/api/v1/workspaces", {"name": "G"}, token), "ws")[
                "id"
            ]
            g = hb.ok(
                *hb.call(
                    base,
                    "POST",
                    f"/api/v1/workspaces/{ws}/projects",
                    {"name": "Measured", "key": "GM"},
                    token,
                ),
                "project",
            )
            projects: list[dict[str, int | str]] = [{"id": g["id"], "tasks": 0}]
            for size in sizes:
                print(f"growing to {size:,} tasks …", flush=True)
                seconds = grow(base, token, ws, projects, size)
                began = time.perf_counter()
                subprocess.run(
                    [hb.PLANBOARD, "reindex", "--workspace", ws],
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                reindex = time.perf_counter() - began
                token = hb.login(base, email, password)
                page = hb.ok(
                    *hb.call(
                        base, "GET", f"/api/v1/projects/{g['id']}/tasks?limit=200", None, token
                    ),
                    "tasks",
                )["items"]
                read_id = page[7]["id"]
                patch_ids = [t["id"] for t in page if t["status"] == "todo"][:100]
                for task_id in patch_ids:  # the PATCH script alternates from todo
                    hb.call(base, "PATCH", f"/api/v1/tasks/{task_id}", {"status": "todo"}, token)
                in_project = int(projects[0]["tasks"])
                # creates go to a project of their own per size: a project holds at most
                # 10,000 tasks and a run adds ~3,000
                writes = hb.ok(
                    *hb.call(
                        base,
                        "POST",
                        f"/api/v1/workspaces/{ws}/projects",
                        {"name": f"Writes {size}", "key": f"WR{len(rows)}"},
                        token,
                    ),
                    "write project",
                )
                paths = [
                    (hb.READ, f"{base}/api/v1/tasks/{read_id}", "get.lua", {}),
                    (
                        hb.LIST,
                        f"{base}/api/v1/projects/{g['id']}/tasks?status=todo&limit=50",
                        "get.lua",
                        {},
                    ),
                    (hb.PROGRESS, f"{base}/api/v1/projects/{g['id']}/progress", "get.lua", {}),
                    (
                        "POST /projects/{id}/tasks",
                        f"{base}/api/v1/projects/{writes['id']}/tasks",
                        "post_task.lua",
                        {},
                    ),
                    (
                        "PATCH /tasks/{id} status",
                        f"{base}/",
                        "patch_status.lua",
                        {"PB_TASK_IDS": ",".join(patch_ids)},
                    ),
                    # last: its slow requests would still queue in the API after wrk ends
                    ("GET /search?q=task", f"{base}/api/v1/search?q=task", "get.lua", {}),
                ]
                points = []
                for name, url, script, extra in paths:
                    hb.settle([base])
                    wrk_env = {"PB_TOKEN": token, **extra}
                    points.append(
                        hb.run_wrk(wrk, name, url, script, args.connections, args.duration, wrk_env)
                    )
                rows.append((size, in_project, seconds, reindex, points))
        finally:
            if api is not None:
                hb.stop(api)
            stack.stop()

    text = report(rows, args, command)
    print()
    print(text)
    if not args.no_doc:
        write_section(text, SECTION)
        print(f"written to docs/benchmarks.md (section “{SECTION}”)")


def report(
    rows: list[tuple[int, int, float, float, list[hb.Point]]],
    args: argparse.Namespace,
    command: str,
) -> str:
    names = [p.path for p in rows[0][4]] if rows else []
    out = [
        f"## {SECTION}",
        "",
        "What is measured: the same paths as above at one connection count "
        f"({args.connections}), {args.duration} s each, while one workspace grows through "
        "the HTTP API (bulk creates of 500). The measured project holds up to "
        f"{PROJECT_CAP:,} tasks; the rest of each size sits in other projects of the "
        "workspace; creates go to a new project per size (a project holds at most 10,000 "
        "tasks). Search (`q=task`: every task's title has the word, the worst case) runs "
        "after `planboard reindex` of the "
        "workspace. One `planboard serve` process, no relay or workers.",
        "",
        f"Machine: {hb.machine()}.",
        "",
        "Command (from `/work/main`):",
        "",
        "```",
        command,
        "```",
        "",
        "Each cell: req/s · p95 ms. errors = non-2xx + socket errors over the whole column.",
        "",
        "| path | " + " | ".join(f"{r[0]:,} tasks ({r[1]:,} in project)" for r in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for i, name in enumerate(names):
        cells = [
            f"{r[4][i].rps:,.0f} · {hb.fmt(r[4][i].p95)}"
            if r[4][i].requests
            else f"none completed within {args.duration} s"
            for r in rows
        ]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append(
        "| errors | "
        + " | ".join(str(sum(p.non2xx + p.socket_errors for p in r[4])) for r in rows)
        + " |"
    )
    out.append("| growing to the size (s) | " + " | ".join(f"{r[2]:.0f}" for r in rows) + " |")
    out.append("| `planboard reindex` (s) | " + " | ".join(f"{r[3]:.0f}" for r in rows) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
