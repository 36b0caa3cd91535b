"""``planboard-operator``: runs the Kopf operator."""

from __future__ import annotations

import argparse
import sys

from planboard_operator import __version__


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="planboard-operator",
        description="Reconcile Planboard custom resources (planboard.dev/v1alpha1).",
    )
    parser.add_argument("--version", action="version", version=f"planboard-operator {__version__}")
    parser.parse_args(argv)
    # The reconcilers land with the Kubernetes issue; until then say so plainly.
    print("planboard-operator: no reconcilers are built into this version yet", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
