"""``planboard dev`` (also ``planboard-dev``, ``python -m planboard_devstack``): the whole
stack on embedded dev servers, or with ``--install-only`` just their installation.

The product's ``planboard dev`` hands over to this command; the product never imports
this package (an import-linter contract).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from planboard.cli import EPILOG_ENV
from planboard.config import Settings, SettingsError
from planboard.logs import configure_logging
from planboard.workers.registry import worker_names
from planboard_devstack.dev import run_dev
from planboard_devstack.stack import InfraStack

EXAMPLES = """\
examples:
  planboard dev
  planboard dev --port 9000
  PLANBOARD_MONGODB_URI=mongodb://db:27017/ planboard dev   # use an existing MongoDB
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="planboard dev",
        description="Run the whole stack on embedded dev servers (Ctrl-C stops it).",
        epilog=EXAMPLES + "\n" + EPILOG_ENV,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, help="API port (default: PLANBOARD_PORT or 8080)")
    parser.add_argument(
        "--run-dir", default=".planboard/dev", help="state and logs (default: %(default)s)"
    )
    parser.add_argument(
        "--install-only",
        action="store_true",
        help="download/build the dev servers into the cache, then exit",
    )
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).resolve()
    if args.install_only:
        stack = InfraStack(run_dir / "servers")
        stack.install()
        print("dev servers installed: " + ", ".join(sorted(stack.servers)))
        return 0
    return run_dev(run_dir, args.port or settings.port, worker_names())


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"planboard: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_json)
    try:
        code = run(settings, args)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # one clear line, non-zero exit; tracebacks only in debug
        if settings.log_level == "DEBUG":
            raise
        print(f"planboard dev: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
