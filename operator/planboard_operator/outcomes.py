"""What the pure decision modules hand back besides objects: Events and Problems.

The decision modules (``desired``, ``scaling``, ``backups``, ``status``) never post an
Event or touch the API; they return these, and the reconciler posts and applies them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event to post on the reconciled object."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that makes a Planboard Degraded without failing its reconcile."""

    reason: str
    message: str
