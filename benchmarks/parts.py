"""A benchmark run as parts that stand alone: BENCHMARKS.md is written again after every part, so a
run that stops keeps every figure measured before; a part that fails (a service that did not answer,
a job that did not end) is reported as failed, with its reason, and the parts after it still run.
A part that needs a value an earlier part failed to measure fails too, naming that value."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .report import Report, load_average


class Missing(RuntimeError):
    """A part needs what an earlier part failed to measure."""


@dataclass
class Parts:
    report: Report
    output: Path
    say: Callable[[str], None]
    values: dict[str, Any] = field(default_factory=dict)  # what parts measured for later parts
    trailer: str = ""  # markdown written after the report (a section another script makes)
    skip: tuple[str, ...] = ()  # parts whose name contains one of these are not run (--skip)

    def need(self, name: str) -> Any:
        """A value an earlier part measured; :class:`Missing` when that part failed."""
        if name not in self.values:
            raise Missing(f"needs {name}, which an earlier part failed to measure")
        return self.values[name]

    def run(self, name: str, part: Callable[[], None]) -> bool:
        """Run one part; write the report whatever happens. True when it measured what it should."""
        if any(word in name for word in self.skip):
            self.report.skipped.append(name)
            return False
        started = time.monotonic()
        self.report.loads.append((name, load_average()))
        try:
            part()
            ok = True
        except (Exception, SystemExit) as exc:  # noqa: BLE001 (one part's failure must not lose the others)
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SystemExit) else str(exc.code)
            self.report.failed.append((name, reason))
            self.say(f"part {name!r} FAILED after {time.monotonic() - started:.0f} s: {reason}")
            ok = False
        self.write()
        return ok

    def write(self) -> None:
        self.output.write_text(self.report.markdown() + self.trailer, encoding="utf-8")
