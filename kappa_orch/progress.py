"""Progress output for long work (a reprocess's catch-up, a backfill): on a terminal a
bar redrawn on one line; elsewhere (CI, a log file) plain timestamped lines.

A message that knows how far the work is carries it as a `ProgressLine` (a `str`, so
every log function takes it unchanged); other messages print as they are."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from typing import IO

# where a step says what it does: a Dagster run's log, the CLI's progress printer, print
Log = Callable[[str], None]


class ProgressLine(str):
    """A progress message and the share of the work done (0..1)."""

    fraction: float

    def __new__(cls, text: str, fraction: float) -> ProgressLine:
        line = super().__new__(cls, text)
        line.fraction = min(1.0, max(0.0, fraction))
        return line


def bar(fraction: float, width: int = 24) -> str:
    """`[##########--------------]  42%` (pure)."""
    filled = round(fraction * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {fraction:4.0%}"


class ProgressPrinter:
    """Prints messages; a `ProgressLine` on a terminal redraws one bar line in place."""

    def __init__(self, stream: IO[str] | None = None, *, terminal: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self._bar_shown = False

    def line(self, message: str) -> None:
        if self.terminal and isinstance(message, ProgressLine):
            columns = shutil.get_terminal_size((100, 20)).columns
            text = f"{bar(message.fraction)} {message}"[: columns - 1]
            self.stream.write(f"\r\033[K{text}")
            self._bar_shown = True
        else:
            self.close()
            self.stream.write(f"{time.strftime('%H:%M:%S')}  {message}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (before other output, and at the end)."""
        if self._bar_shown:
            self.stream.write("\n")
            self._bar_shown = False


class ProgressHandler(logging.Handler):
    """A logging handler that prints through a ProgressPrinter."""

    def __init__(self, printer: ProgressPrinter) -> None:
        super().__init__()
        self.printer = printer

    def emit(self, record: logging.LogRecord) -> None:
        message = record.msg if isinstance(record.msg, ProgressLine) else record.getMessage()
        self.printer.line(message)
