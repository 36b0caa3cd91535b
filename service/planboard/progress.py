"""Progress of long CLI operations on stderr: a bar on a terminal, plain lines in a log.

On a TTY the line is redrawn in place (``import: write  [#######.....]  3/5``); when
stderr is a file or a pipe (a Kubernetes Job's log) a plain line is printed at the start
and end of each phase and at most every ``interval_s`` seconds in between.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Protocol, TextIO

BAR_WIDTH = 24


class StepLike(Protocol):
    """What a progress callback receives (``services.backup.BackupStep`` and
    ``services.hot_reads.WarmProgress`` have this shape)."""

    @property
    def phase(self) -> str: ...

    @property
    def item(self) -> str: ...

    @property
    def done(self) -> int: ...

    @property
    def total(self) -> int | None: ...


@dataclass(frozen=True)
class Step:
    phase: str
    item: str = ""
    done: int = 0
    total: int | None = None


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[#########...............]  37%``"""
    fraction = 0.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = round(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {round(fraction * 100):3d}%"


class ConsoleProgress:
    """A callable progress reporter of one CLI command on stderr
    (``ConsoleProgress("import")(step)``)."""

    def __init__(
        self, command: str, stream: TextIO | None = None, *, interval_s: float = 5.0
    ) -> None:
        self.command = command
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.interval_s = interval_s
        self.last = ""
        self.last_phase = ""
        self.last_printed = 0.0

    def _text(self, step: StepLike) -> str:
        unit = " bytes" if step.phase in ("upload", "download") else ""
        head = f"{self.command}: {step.phase} {step.item}".rstrip()
        if step.total is None:
            return f"{head} {step.done}{unit}".rstrip() if step.done else head
        if self.tty:
            return f"{head} {bar(step.done, step.total)} {step.done}/{step.total}{unit}"
        return f"{head} {step.done}/{step.total}{unit}"

    def __call__(self, step: StepLike) -> None:
        text = self._text(step)
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
        else:
            now = time.monotonic()
            boundary = (
                step.total is None or step.done in (0, step.total) or step.phase != self.last_phase
            )
            if text != self.last and (boundary or now - self.last_printed >= self.interval_s):
                print(text, file=self.stream, flush=True)
                self.last_printed = now
        self.last = text
        self.last_phase = step.phase

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()
        self.last = ""
