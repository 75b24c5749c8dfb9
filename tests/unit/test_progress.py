"""Progress output: a bar redrawn in place on a terminal, plain timestamped lines in CI
or a log file (found: a reprocess and a backfill printed only plain lines, anywhere)."""

from __future__ import annotations

import io
import logging

from kappa_orch.progress import ProgressHandler, ProgressLine, ProgressPrinter, bar


def test_the_bar_shows_the_share_done() -> None:
    assert bar(0.0, width=10) == "[----------]   0%"
    assert bar(0.42, width=10) == "[####------]  42%"
    assert bar(1.0, width=10) == "[##########] 100%"
    assert ProgressLine("x", 1.7).fraction == 1.0 and ProgressLine("x", -1).fraction == 0.0


def test_on_a_terminal_progress_redraws_one_line_and_other_lines_end_it() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, terminal=True)
    printer.line(ProgressLine("catch-up 10%", 0.1))
    printer.line(ProgressLine("catch-up 60%", 0.6))
    printer.line("the job is RESTARTING")
    printer.line(ProgressLine("catch-up 100%", 1.0))
    printer.close()
    text = out.getvalue()
    assert text.count("\r\033[K") == 3
    assert "[##############----------]  60% catch-up 60%" in text
    before, after = text.split("the job is RESTARTING")
    assert "60% catch-up 60%\n" in before  # the bar's line ended before the plain line
    assert after.endswith("100% catch-up 100%\n")


def test_elsewhere_every_message_is_a_plain_line() -> None:
    out = io.StringIO()
    logger = logging.getLogger("kappa_orch.test_progress")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = ProgressHandler(ProgressPrinter(out, terminal=False))
    logger.addHandler(handler)
    try:
        logger.info(ProgressLine("daily_spend: catch-up 50% of the backlog", 0.5))
        logger.info("daily_spend: gate passed")
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == [
        "daily_spend: catch-up 50% of the backlog",
        "daily_spend: gate passed",
    ]
    assert "\r" not in out.getvalue() and "#" not in out.getvalue()
