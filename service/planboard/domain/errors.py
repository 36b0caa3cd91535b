"""Domain errors shared by the whole service; the API maps each class to one HTTP status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class DomainError(Exception):
    """Base of every expected, user-facing failure; ``detail`` is safe to show to clients."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The resource does not exist (or is not visible to the caller)."""


class Unauthorized(DomainError):
    """No valid credentials were presented (401)."""


class Forbidden(DomainError):
    """The caller is known but may not do this (403): role or token scope too small."""


class Conflict(DomainError):
    """The request contradicts the current state (duplicate, cycle, ...)."""


class VersionMismatch(DomainError):
    """The caller wrote against a stale version (optimistic concurrency)."""


class ValidationFailed(DomainError):
    """Input failed validation; ``errors`` lists ``(field, message)`` pairs for the client."""

    def __init__(
        self, errors: Iterable[tuple[str, str]], detail: str = "validation failed"
    ) -> None:
        super().__init__(detail)
        self.errors: list[tuple[str, str]] = list(errors)


class PayloadTooLarge(DomainError):
    """The request body (an upload) is larger than the limit (413)."""


class Unavailable(DomainError):
    """A dependency (file storage, …) is down or failing; a retry may succeed (503)."""


class UnsupportedContent(DomainError):
    """The content is of a kind the service does not accept, whatever it claims (415)."""


def describe_cycle(cycle: Sequence[str]) -> str:
    """Human-readable cycle such as ``a -> b -> a``."""
    return " -> ".join(cycle)


class CycleDetected(Conflict):
    """A dependency would close a loop; ``cycle`` is the loop with its first node repeated last.

    Each node in ``cycle`` is blocked by the node that follows it.
    """

    def __init__(self, cycle: Sequence[str], detail: str | None = None) -> None:
        self.cycle: list[str] = list(cycle)
        super().__init__(detail or f"dependency cycle: {describe_cycle(self.cycle)}")


class PlanSyntaxError(DomainError):
    """A Markdown plan could not be read; ``line`` (1-based) points at the offending line."""

    def __init__(self, line: int, detail: str) -> None:
        super().__init__(detail)
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.detail}"
