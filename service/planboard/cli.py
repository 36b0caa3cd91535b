"""The ``planboard`` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import textwrap
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from planboard import __version__
from planboard.config import Settings, SettingsError
from planboard.config import markdown as config_markdown
from planboard.logs import configure_logging
from planboard.progress import ConsoleProgress, Step
from planboard.services.context import ServiceContext

EPILOG_ENV = """\
environment:
  PLANBOARD_MONGODB_URI, PLANBOARD_KAFKA_BOOTSTRAP, PLANBOARD_REDIS_URL  the servers to use
  PLANBOARD_ENV (development|test|production), PLANBOARD_SECRET_KEY, PLANBOARD_PORT, ...
  see docs/configuration.md for every setting
"""


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from planboard.app import serve

    if args.port is not None:
        settings = settings.replace(port=args.port)
    if settings.api_processes > 1:
        from planboard.supervisor import supervise

        return supervise(settings, [] if args.port is None else ["--port", str(args.port)])
    serve(settings)
    return 0


def cmd_relay(settings: Settings, args: argparse.Namespace) -> int:
    from planboard.runners import run_relay

    _run(run_relay(settings))
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from planboard.runners import run_worker

    _run(run_worker(settings, args.group))
    return 0


async def _migrate(settings: Settings, show_status: bool) -> int:
    from planboard.store import migrations
    from planboard.store.mongo import create_client, database

    client = create_client(settings, appname="planboard-migrate")
    try:
        db = database(client, settings)
        if show_status:
            done = await migrations.applied_versions(db)
            for m in migrations.MIGRATIONS:
                mark = "applied" if m.version in done else "pending"
                print(f"{m.version:>4}  {mark:<8} {m.name}")
            return 0
        applied = await migrations.migrate(db, wait_s=300)
        for m in applied:
            print(f"applied {m.version}: {m.name}")
        print(f"database {settings.mongodb_db} is at version {migrations.MIGRATIONS[-1].version}")
        return 0
    finally:
        await client.close()


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    result: int = _run(_migrate(settings, args.status))
    return result


def demo_password(path: Path, settings: Settings) -> str:
    """The demo login's password kept in ``path`` (created, mode 0600, with a random
    password when missing, so every run of one state dir prints the same login)."""
    from planboard.services.seed import new_demo_password

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    password = new_demo_password(settings)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(password + "\n")
    return password


async def _seed(settings: Settings, args: argparse.Namespace) -> int:
    from planboard.domain.errors import DomainError
    from planboard.services.seed import DEMO_EMAIL, seed_demo, seed_demo_user
    from planboard.store.mongo import create_client, database

    if args.demo_user is not None and settings.env != "development":
        print(
            f"error: --demo-user is for development only (PLANBOARD_ENV is {settings.env}); "
            "nothing was seeded",
            file=sys.stderr,
        )
        return 2
    password = None if args.demo_user is None else demo_password(Path(args.demo_user), settings)
    steps = 1 if password is None else 2
    progress = ConsoleProgress("seed")
    client = create_client(settings, appname="planboard-seed")
    demo: dict[str, str] | None = None
    try:
        db = database(client, settings)
        progress(Step("seed demo workspace", done=0, total=steps))
        project, created = await seed_demo(ServiceContext(client, db, settings))
        progress(Step("seed demo workspace", done=1, total=steps))
        if password is not None:
            try:
                _, outcome = await seed_demo_user(
                    db, settings, workspace_id=project["workspace_id"], password=password
                )
            except DomainError as exc:
                print(f"error: demo user: {exc.detail}", file=sys.stderr)
                return 2
            demo = {"email": DEMO_EMAIL, "outcome": outcome}
            progress(Step("seed demo user", done=2, total=steps))
    finally:
        progress.close()
        await client.close()
    if args.json:
        summary = {
            "workspace_id": project["workspace_id"],
            "project_id": project["_id"],
            "project_key": project["key"],
            "project_created": created,
            "demo_user": demo,
        }
        print(json.dumps(summary))
        return 0
    verb = "created" if created else "already present"
    print(f"demo project {project['key']} ({project['name']}) {verb}: id {project['_id']}")
    if demo is not None:
        print(f"demo user {demo['email']} ({demo['outcome']}), password in {args.demo_user}")
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    result: int = _run(_seed(settings, args))
    return result


async def _reindex(settings: Settings, workspace_id: str | None) -> int:
    from planboard.services import search_cache
    from planboard.services.search import reindex
    from planboard.store.mongo import create_client, database
    from planboard.store.redis_client import create_redis

    client = create_client(settings, appname="planboard-reindex")
    last: dict[str, int] = {}

    def progress(kind: str, done: int) -> None:
        if done != last.get(kind):
            last[kind] = done
            print(f"  {kind}: {done} indexed", flush=True)

    target = f"workspace {workspace_id}" if workspace_id else "all workspaces"
    print(f"reindexing {target} into search_index", flush=True)
    try:
        report = await reindex(database(client, settings), workspace_id, progress=progress)
    finally:
        await client.close()
    # cached search answers were read from the old index: a new whole-index generation
    redis = create_redis(settings)
    try:
        await search_cache.bump_quietly(redis, everything=True)
    finally:
        await redis.aclose()
    print(
        f"done: {report.projects} projects, {report.tasks} tasks, {report.comments} comments "
        f"indexed; {report.removed} stale entries removed"
    )
    return 0


def cmd_reindex(settings: Settings, args: argparse.Namespace) -> int:
    result: int = _run(_reindex(settings, args.workspace))
    return result


async def _cache_warm(settings: Settings, args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from planboard.services import cache, hot_reads
    from planboard.store.mongo import create_client, database
    from planboard.store.redis_client import create_redis

    client = create_client(settings, appname="planboard-cache-warm")
    redis = create_redis(settings)
    progress = ConsoleProgress("cache-warm")
    try:
        await redis.ping()  # no Redis, nothing to warm: fail at once, clearly
        db = database(client, settings)
        targets = await hot_reads.candidates(
            db,
            workspace_ids=args.workspace or (),
            project_ids=args.project or (),
            limit=args.limit,
        )
        reads = cache.ReadThrough(redis, cache.CacheMetrics(CollectorRegistry()))
        report = await hot_reads.warm(
            reads,
            db,
            targets,
            tasks_per_project=args.tasks,
            concurrency=args.concurrency,
            invalidate=args.invalidate,
            progress=progress,
        )
    finally:
        progress.close()
        await redis.aclose()
        await client.close()
    for error in report.errors:
        print(f"failed: {error}", file=sys.stderr)
    print(
        f"done: {report.projects} projects; {report.warmed} warmed, {report.skipped} skipped, "
        f"{report.failed} failed in {report.seconds:.1f}s"
    )
    return 1 if report.failed else 0


def cmd_cache_warm(settings: Settings, args: argparse.Namespace) -> int:
    result: int = _run(_cache_warm(settings, args))
    return result


IMPORT_STEPS = 4


async def _import(settings: Settings, args: argparse.Namespace, progress: ConsoleProgress) -> int:
    from planboard.domain.plan import parse_plan
    from planboard.services.plans import import_plan
    from planboard.store import workspaces
    from planboard.store.mongo import create_client, database

    total = IMPORT_STEPS
    progress(Step("parse", str(args.path), 1, total))
    plan = parse_plan(args.text)
    client = create_client(settings, appname="planboard-import")
    try:
        db = database(client, settings)
        progress(Step("check workspace", args.workspace, 2, total))
        if await workspaces.get(db, args.workspace) is None:
            raise LookupError(f"no workspace {args.workspace}")
        progress(Step("write", f"{len(plan.tasks())} tasks", 3, total))
        project = await import_plan(
            ServiceContext(client, db, settings),
            workspace_id=args.workspace,
            plan=plan,
            key=args.key,
        )
        progress(Step("done", "", total, total))
    finally:
        await client.close()
    progress.close()
    print(
        f"imported {len(plan.tasks())} tasks in {len(plan.phases)} phases as project "
        f"{project['key']} ({project['name']}): id {project['_id']}"
    )
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    progress = ConsoleProgress("import")
    try:
        progress(Step("read", str(args.path), 0, IMPORT_STEPS))
        args.text = Path(args.path).read_text(encoding="utf-8")
        result: int = _run(_import(settings, args, progress))
    finally:
        progress.close()
    return result


def cmd_openapi(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from planboard.api.openapi import postman_collection
    from planboard.api.validation import openapi_document
    from planboard.app import create_app

    spec = openapi_document(create_app(settings))
    text = json.dumps(spec, indent=2, ensure_ascii=False) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote the OpenAPI document to {args.output}", file=sys.stderr)
    if args.postman:
        collection = postman_collection(spec)
        Path(args.postman).write_text(
            json.dumps(collection, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote the Postman collection to {args.postman}", file=sys.stderr)
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from planboard.events.replay import replay_dead_letters

    moved: int = _run(
        replay_dead_letters(settings, args.group, timeout_s=args.timeout, limit=args.limit)
    )
    print(f"re-drove {moved} dead letter(s) of group {args.group} to its retry topic")
    return 0


async def _backup(settings: Settings, args: argparse.Namespace) -> int:
    from planboard.services import backup
    from planboard.store.mongo import create_client

    database = args.database or settings.mongodb_db
    target = backup.open_target(args.to, s3_endpoint=args.s3_endpoint, s3_region=args.s3_region)
    progress = ConsoleProgress("backup")
    client = create_client(settings, appname="planboard-backup")
    try:
        result = await backup.backup(
            client,
            database,
            target,
            name=args.name,
            prune_keep=args.prune_keep,
            progress=progress,
        )
    finally:
        progress.close()
        await client.close()
    manifest = result.manifest
    print(
        f"backed up {manifest.total_documents} documents in {len(manifest.collections)} "
        f"collections of {database} ({manifest.consistency}) to {result.location} "
        f"({result.archive_bytes} bytes)"
    )
    for gone in result.pruned:
        print(f"pruned {gone}")
    return 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    result: int = _run(_backup(settings, args))
    return result


async def _restore(settings: Settings, args: argparse.Namespace) -> int:
    from planboard.services import backup
    from planboard.store.mongo import create_client

    database = args.database or settings.mongodb_db
    progress = ConsoleProgress("restore")
    client = create_client(settings, appname="planboard-restore")
    try:
        manifest = await backup.restore(
            client,
            database,
            args.archive,
            drop=args.drop,
            s3_endpoint=args.s3_endpoint,
            s3_region=args.s3_region,
            progress=progress,
        )
    finally:
        progress.close()
        await client.close()
    print(
        f"restored {manifest.total_documents} documents in {len(manifest.collections)} "
        f"collections into {database} (backup of {manifest.database} "
        f"finished {manifest.finished_at})"
    )
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    result: int = _run(_restore(settings, args))
    return result


#: The dev stack's package (devstack/ of the source checkout, distribution planboard-devstack):
#: `make run` and `make setup` install it; the wheel and the image carry the product only.
DEVSTACK_MODULE = "planboard_devstack"


def run_dev(args: Sequence[str]) -> NoReturn:
    """``planboard dev``: hand over to the dev stack's own command in this interpreter (the
    product never imports it), or say how to get it where it is not installed."""
    if importlib.util.find_spec(DEVSTACK_MODULE) is None:
        print(
            "planboard dev: the dev stack is not installed here. It is a development tool, "
            "not part of the product (wheel, image): in a source checkout `make run` or "
            "`make setup` installs it (the planboard-devstack package in devstack/).",
            file=sys.stderr,
        )
        sys.exit(2)
    # Replaces this process (same pid: Ctrl-C and SIGTERM reach the dev stack directly).
    os.execv(sys.executable, [sys.executable, "-m", DEVSTACK_MODULE, *args])  # noqa: S606


def _group_name(value: str) -> str:
    if not value or len(value) > 60 or not all(c.isalnum() or c in "-_" for c in value):
        raise argparse.ArgumentTypeError("letters, digits, - and _ only")
    return value


def _object_id(value: str) -> str:
    if len(value) != 24 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError("an id: 24 lowercase hex digits")
    return value


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number, {low} to {high}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"a whole number, {low} to {high}")
        return number

    return parse


def build_parser() -> argparse.ArgumentParser:
    from planboard.workers.registry import worker_names

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="planboard",
        description="Planboard: project planning API, workers and tools.",
        epilog=EPILOG_ENV,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"planboard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str, examples: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog="examples:\n" + textwrap.indent(examples, "  ") + "\n\n" + EPILOG_ENV,
            formatter_class=fmt,
        )

    p = add(
        "serve",
        "Run the HTTP API (PLANBOARD_API_PROCESSES=N|auto: N processes on one port).",
        "planboard serve\nPLANBOARD_PORT=9000 planboard serve\n"
        "PLANBOARD_API_PROCESSES=auto planboard serve",
    )
    p.add_argument("--port", type=int, help="port to listen on (default: PLANBOARD_PORT or 8080)")
    p.set_defaults(func=cmd_serve)

    p = add("relay", "Publish the outbox to Kafka (run one or more replicas).", "planboard relay")
    p.set_defaults(func=cmd_relay)

    p = add("worker", "Run one Kafka consumer group.", "planboard worker --group rollups")
    p.add_argument("--group", required=True, choices=worker_names(), help="the consumer group")
    p.set_defaults(func=cmd_worker)

    p = add(
        "replay",
        "Re-drive a worker group's dead letters (after fixing the cause).",
        "planboard replay --group notifications\nplanboard replay --group webhooks --limit 100",
    )
    p.add_argument("--group", required=True, type=_group_name, help="the consumer group")
    p.add_argument("--limit", type=int, help="at most this many (default: all present now)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to spend at most")
    p.set_defaults(func=cmd_replay)

    p = add(
        "migrate",
        "Create collections and indexes (idempotent, versioned).",
        "planboard migrate\nplanboard migrate --status",
    )
    p.add_argument("--status", action="store_true", help="list migrations and whether applied")
    p.set_defaults(func=cmd_migrate)

    p = add(
        "reindex",
        "Rebuild the search index from projects, tasks and comments (idempotent).",
        "planboard reindex\nplanboard reindex --workspace 6650c0ffee0000000000abcd",
    )
    p.add_argument("--workspace", metavar="ID", help="only this workspace (default: all)")
    p.set_defaults(func=cmd_reindex)

    p = add(
        "cache-warm",
        "Pre-fill the Redis read cache (projects, progress, hot tasks) after a deploy or restore.",
        "planboard cache-warm\n"
        "planboard cache-warm --limit 200 --tasks 50\n"
        "planboard cache-warm --workspace 66f0c1d2e3a4b5c6d7e8f901 --concurrency 8\n"
        "planboard cache-warm --project 66f0c1d2e3a4b5c6d7e8f902 --tasks 0\n"
        "planboard cache-warm --invalidate   # after a restore: drop what was cached before",
    )
    p.add_argument(
        "--workspace",
        action="append",
        type=_object_id,
        metavar="ID",
        help="only projects of this workspace (repeatable; default: all)",
    )
    p.add_argument(
        "--project",
        action="append",
        type=_object_id,
        metavar="ID",
        help="only this project, whatever its status (repeatable)",
    )
    p.add_argument(
        "--limit",
        type=_count(1, 1_000_000),
        metavar="N",
        help="at most N projects, the most recently active first (default: all)",
    )
    p.add_argument(
        "--tasks",
        type=_count(0, 10_000),
        default=20,
        metavar="N",
        help="also the N most recently changed tasks of each project (default: %(default)s)",
    )
    p.add_argument(
        "--concurrency",
        type=_count(1, 64),
        default=4,
        metavar="N",
        help="projects warmed at once (default: %(default)s)",
    )
    p.add_argument(
        "--invalidate",
        action="store_true",
        help="first drop each project's cached values (after a restore)",
    )
    p.set_defaults(func=cmd_cache_warm)

    p = add(
        "seed",
        "Load the demo workspace with the sample plan (idempotent); in development also a "
        "demo login that owns it.",
        "planboard seed\n"
        "planboard seed --demo-user .planboard/dev/demo-password   # what planboard dev runs\n"
        "planboard seed --json",
    )
    p.add_argument(
        "--demo-user",
        metavar="PASSWORD_FILE",
        help="also seed the login demo@planboard.test, owner of the Demo workspace, with the "
        "password in PASSWORD_FILE (created with a random one if missing); refused unless "
        "PLANBOARD_ENV=development",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary (ids, demo user)")
    p.set_defaults(func=cmd_seed)

    p = add(
        "import",
        "Import a Markdown plan file (plan-template.md format) as a new project.",
        "planboard import plan.md --workspace 66f0c1d2e3a4b5c6d7e8f901\n"
        "planboard import docs/roadmap.md --workspace 66f0c1d2e3a4b5c6d7e8f901 --key RM",
    )
    p.add_argument("path", metavar="PATH", help="the plan file (UTF-8 Markdown)")
    p.add_argument("--workspace", required=True, metavar="ID", help="the workspace id")
    p.add_argument("--key", help="project key (2-10 letters/digits; default: from the name)")
    p.set_defaults(func=cmd_import)

    p = add(
        "openapi",
        "Print the OpenAPI 3 document (generated from the request/response schemas).",
        "planboard openapi > openapi.json\n"
        "planboard openapi --output docs/openapi.json "
        "--postman docs/planboard.postman_collection.json",
    )
    p.add_argument("--output", "-o", metavar="PATH", help="write it here (default: stdout)")
    p.add_argument("--postman", metavar="PATH", help="also write a Postman v2.1 collection")
    p.set_defaults(func=cmd_openapi)

    p = add(
        "config",
        "Print the effective settings (secrets hidden) or, with --markdown, the table of "
        "every setting that docs/configuration.md holds.",
        "planboard config\nplanboard config --markdown",
    )
    p.add_argument("--markdown", action="store_true", help="every setting, its default and meaning")
    p.set_defaults(func=cmd_config)

    p = add(
        "backup",
        "Write a compressed, checksummed logical backup of the database.",
        "planboard backup --to /backups\n"
        "planboard backup --to /backups --name nightly-2026-11-25 --prune-keep 7\n"
        "AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \\\n"
        "  planboard backup --to s3://my-bucket/planboard/ --s3-endpoint https://s3.example.com",
    )
    p.add_argument(
        "--to", required=True, metavar="DIR|s3://BUCKET/PREFIX/", help="where to write the archive"
    )
    p.add_argument("--name", help="archive name without .tar.gz (default: <database>-<UTC time>)")
    p.add_argument(
        "--prune-keep",
        type=int,
        metavar="N",
        help="afterwards delete all but the newest N archives at the target",
    )
    p.add_argument("--database", help="database to back up (default: PLANBOARD_MONGODB_DB)")
    p.add_argument("--s3-endpoint", help="S3-compatible endpoint URL (default: AWS_ENDPOINT_URL)")
    p.add_argument("--s3-region", help="S3 region (default: AWS_REGION)")
    p.set_defaults(func=cmd_backup)

    p = add(
        "restore",
        "Restore a backup archive (checksums are verified before anything is written).",
        "planboard restore /backups/planboard-20261125T030000Z.tar.gz\n"
        "planboard restore /backups/nightly.tar.gz --drop   # replace existing collections\n"
        "planboard restore s3://my-bucket/planboard/nightly.tar.gz --database planboard_copy",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="archive path or s3://bucket/key.tar.gz")
    p.add_argument(
        "--drop",
        action="store_true",
        help="drop the archive's collections first (default: refuse unless they are empty)",
    )
    p.add_argument("--database", help="database to restore into (default: PLANBOARD_MONGODB_DB)")
    p.add_argument("--s3-endpoint", help="S3-compatible endpoint URL (default: AWS_ENDPOINT_URL)")
    p.add_argument("--s3-region", help="S3 region (default: AWS_REGION)")
    p.set_defaults(func=cmd_restore)

    # Listed for `planboard --help`; main() hands `planboard dev ...` over before parsing.
    sub.add_parser(
        "dev",
        help="Run the whole stack on embedded dev servers (the dev stack's command; "
        "`planboard dev --help`).",
        add_help=False,
    )
    return parser


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    if args.markdown:
        print(config_markdown(), end="")
    else:
        print(json.dumps(settings.redacted(), indent=2, default=str))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["dev"]:
        run_dev(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"planboard: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_json)
    try:
        code = args.func(settings, args)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # one clear line, non-zero exit; tracebacks only in debug
        if settings.log_level == "DEBUG":
            raise
        print(f"planboard {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
