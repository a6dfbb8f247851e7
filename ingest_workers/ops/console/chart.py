"""The runs of a source as an SVG bar chart drawn by the server (no script, no CDN: it works
offline): one stacked bar per run, oldest on the left, of the records it loaded, updated,
deleted, found duplicate and rejected. Every value is escaped; each bar part carries its number."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

KINDS = (("loaded", "#3a9b4a"), ("updated", "#3b6fc4"), ("deleted", "#8a5a2b"), ("duplicate", "#a0a0a0"),
         ("rejected", "#d0453b"))
WIDTH, HEIGHT = 720, 240
LEFT, BOTTOM, TOP = 56, 28, 24  # room for the axis labels and the legend
LABEL_WIDTH = 84  # of a run's start time under its bar


def runs_chart(runs: Sequence[dict[str, Any]]) -> str:
    """The chart of ``runs`` (the source document's, newest first) as an ``<svg>`` element."""
    ordered = list(reversed(runs))
    peak = max([sum(int(run[kind]) for kind, _ in KINDS) for run in ordered] + [1])
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    step = min(plot_w / max(len(ordered), 1), 60.0)  # a few runs stay side by side on the left
    label_every = math.ceil(LABEL_WIDTH / step)  # labels never overlap
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" width="100%" '
             f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
             "<title>records per run: loaded, updated, deleted, duplicate, rejected</title>",
             *_axes(peak, plot_h), *_legend()]
    bar_width = min(max(step * 0.7, 1.0), 40.0)
    for index, run in enumerate(ordered):
        parts += _bar(run, LEFT + index * step, bar_width, peak, plot_h)
        if index % label_every == 0:
            parts.append(_label(run, LEFT + index * step, bar_width))
    if not ordered:
        parts.append(f'<text x="{LEFT + 8}" y="{TOP + 40}" font-size="14" fill="#555">no runs yet</text>')
    parts.append("</svg>")
    return "".join(parts)


def _label(run: dict[str, Any], x: float, bar_width: float) -> str:
    """A run's start time under its bar: from the bar's left edge, or ending at its right edge when it
    would run past the chart's (the last bars of a full chart)."""
    label = escape(str(run.get("started_at") or "")[5:16].replace("T", " "))
    anchor = f'x="{x:.1f}"' if x + LABEL_WIDTH <= WIDTH else f'x="{x + bar_width:.1f}" text-anchor="end"'
    return f'<text class="label" {anchor} y="{HEIGHT - 8}" font-size="10" fill="#555">{label}</text>'


def _bar(run: dict[str, Any], x: float, width: float, peak: int, plot_h: float) -> list[str]:
    """One run's stacked bar, bottom up; a part of zero records is left out."""
    parts, y = [], float(TOP + plot_h)
    run_id = escape(str(run["run_id"]), quote=True)
    for kind, colour in KINDS:
        value = int(run[kind])
        if not value:
            continue
        height = plot_h * value / peak
        y -= height
        parts.append(f'<rect class="bar {kind}" data-run="{run_id}" data-kind="{kind}" data-value="{value}" '
                     f'x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{max(height, 0.5):.1f}" '
                     f'fill="{colour}"><title>{run_id}: {value:,} {kind}</title></rect>')
    return parts


def _axes(peak: int, plot_h: float) -> list[str]:
    bottom = TOP + plot_h
    return [f'<line x1="{LEFT - 4}" y1="{bottom}" x2="{WIDTH - 8}" y2="{bottom}" stroke="#888"/>',
            f'<line x1="{LEFT - 4}" y1="{TOP}" x2="{WIDTH - 8}" y2="{TOP}" stroke="#ddd"/>',
            f'<text x="{LEFT - 8}" y="{TOP + 4}" font-size="11" text-anchor="end" fill="#555">{peak:,}</text>',
            f'<text x="{LEFT - 8}" y="{bottom}" font-size="11" text-anchor="end" fill="#555">0</text>']


def _legend() -> list[str]:
    parts = []
    for index, (kind, colour) in enumerate(KINDS):
        x = LEFT + index * 100
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 16}" y="14" font-size="12" fill="#333">{kind}</text>')
    return parts
