"""BENCHMARKS.md: every figure with the baseline it was divided by, both from the same run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .profiling import Profile


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float = 0.0
    target: float | None = None  # the ratio must be at least this (or at most, when ``at_most``)
    at_most: bool = False
    note: str = ""
    why: str = ""  # what the report says when the target is missed

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None

    @property
    def verdict(self) -> str:
        if self.target is None or self.ratio is None:
            return ""
        met = self.ratio <= self.target if self.at_most else self.ratio >= self.target
        return "met" if met else "**missed**"


@dataclass
class Report:
    header: list[str]
    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # extra markdown sections
    profile: Profile | None = None
    slow_profile: Profile | None = None  # the slow source's job at concurrency 8 (issue 15's benchmark 1)
    loads: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)  # load average per part
    failed: list[tuple[str, str]] = field(default_factory=list)  # parts that failed: (part, reason)
    skipped: list[str] = field(default_factory=list)  # parts not run (--skip)

    def markdown(self) -> str:
        lines = ["# Benchmarks", "", *self.header, "",
                 "| # | figure | measured | baseline (same run) | ratio | target | |",
                 "|---|---|---:|---|---:|---|---|"]
        for number, fig in enumerate(self.figures, 1):
            target = "" if fig.target is None else f"{'≤' if fig.at_most else '≥'} {fig.target:g}×"
            baseline = f"{fig.baseline_name}: {_num(fig.baseline)}" if fig.baseline_name and fig.baseline else ""
            ratio = "" if fig.ratio is None else f"{fig.ratio:.2f}×"
            measured = f"{_num(fig.value)} {fig.unit}" if fig.value else "—"
            lines.append(f"| {number} | {fig.name}{f' ({fig.note})' if fig.note else ''} | "
                         f"{measured} | {baseline} | {ratio} | {target} | {fig.verdict} |")
        missed = [(n, f) for n, f in enumerate(self.figures, 1) if f.verdict == "**missed**"]
        if missed:
            lines += ["", "## Targets missed, and why", ""]
            lines += [f"- **#{n} {f.name}** ({f.ratio:.2f}× against {f.target:g}×): {f.why}" for n, f in missed]
        if self.failed:
            lines += ["", "## Parts that failed in this run", "",
                      "Their figures are missing above; every other figure stands.", ""]
            lines += [f"- **{part}**: {reason}" for part, reason in self.failed]
        if self.skipped:
            lines += ["", f"Parts not run in this run (`--skip`): {', '.join(self.skipped)}."]
        lines += ["", *self.details]
        if self.profile is not None:
            lines += ["", *_profile_section(self.profile)]
        if self.slow_profile is not None:
            lines += ["", *_profile_section(self.slow_profile, "Where the slow source's job goes, at concurrency 8",
                                            "against the slow mock source (100 ms per page, 8 requests in flight; "
                                            "cProfile sees the job's own thread: time waiting for a page shows as "
                                            "lock `acquire`)")]
        return "\n".join(lines) + "\n"


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def _profile_section(profile: Profile, title: str = "Where a worker's time goes",
                     against: str = "against the same mock source") -> list[str]:
    rate = profile.records / profile.seconds
    lines = [f"## {title}", "",
             f"One job over all {profile.records:,} records in one process (no RQ), {against}: "
             f"{profile.seconds:.2f} s ({rate:,.0f} records/s) without the profiler, "
             f"{profile.profiled_seconds:.2f} s under cProfile. The costliest functions by own time:", "",
             "| function | own s | own % | with callees s | calls |", "|---|---:|---:|---:|---:|"]
    for line in profile.lines:
        share = 100 * line.own_seconds / profile.profiled_seconds
        lines.append(f"| `{line.function}` | {line.own_seconds:.2f} | {share:.0f}% | {line.total_seconds:.2f} | "
                     f"{line.calls:,} |")
    return lines
