"""``planboard-operator``: runs the Kopf operator for Planboard resources."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import kopf

from planboard_operator import __version__
from planboard_operator.config import Endpoints, OperatorConfig, Peering, Scope, Timing

EXAMPLES = """\
examples:
  planboard-operator --all-namespaces
  planboard-operator --namespace planboard --namespace staging
  planboard-operator -A --peering planboard --priority 100   # several replicas, one active
  planboard-operator -A --resync-seconds 10 --posting-level INFO --verbose
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="planboard-operator",
        description="Reconcile Planboard, PlanboardBackup and PlanboardRestore resources "
        "(planboard.dev/v1alpha1).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"planboard-operator {__version__}")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; globs like 'team-*' allowed)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    parser.add_argument(
        "--peering",
        metavar="NAME",
        help="coordinate replicas through this KopfPeering (default: standalone, no peering)",
    )
    parser.add_argument("--priority", type=int, default=0, help="peering priority (default: 0)")
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=30.0,
        help="re-check every object this often: drift, lag, schedules (default: 30)",
    )
    parser.add_argument(
        "--scale-down-stabilization-seconds",
        type=float,
        default=300.0,
        help="wait this long after a worker scale change before scaling down (default: 300)",
    )
    parser.add_argument(
        "--lag-timeout-seconds",
        type=float,
        default=5.0,
        help="time allowed to read consumer lag from Kafka (default: 5)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=9090,
        help="port of the Prometheus /metrics endpoint; -1 disables it (default: 9090)",
    )
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        metavar="URL",
        help="kopf's liveness endpoint; 'none' disables it (default: %(default)s)",
    )
    parser.add_argument(
        "--posting-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="lowest level of kopf's handler messages posted as Events (default: WARNING)",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, $KUBECONFIG)")
    parser.add_argument(
        "--log-format", default="json", choices=["plain", "full", "json"], help="log line format"
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log more")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    verbosity.add_argument("--debug", action="store_true", help="log everything")
    return parser


def config_from_args(args: argparse.Namespace) -> OperatorConfig:
    namespaces = tuple(args.namespace)
    return OperatorConfig(
        scope=Scope(namespaces=namespaces, clusterwide=args.all_namespaces or not namespaces),
        timing=Timing(
            resync_seconds=args.resync_seconds,
            lag_timeout_seconds=args.lag_timeout_seconds,
            scale_down_stabilization_seconds=args.scale_down_stabilization_seconds,
        ),
        endpoints=Endpoints(
            metrics_port=None if args.metrics_port < 0 else args.metrics_port,
            liveness_endpoint=None if args.liveness.lower() == "none" else args.liveness,
        ),
        peering=Peering(name=args.peering, priority=args.priority),
        posting_level=args.posting_level,
        kubeconfig=args.kubeconfig,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.resync_seconds <= 0:
        print("planboard-operator: --resync-seconds must be positive", file=sys.stderr)
        sys.exit(2)
    config = config_from_args(args)
    kopf.configure(
        debug=args.debug,
        verbose=args.verbose,
        quiet=args.quiet,
        log_format=kopf.LogFormat[args.log_format.upper()],
    )
    from planboard_operator.run import run_operator

    try:
        asyncio.run(run_operator(config))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
