"""The page of one source, rendered from its document (``/status/sources/NAME``): facts (dataset,
schedule, cursor), its runs as a chart and a table, the top reasons of its rejects with a few
records each, and its datasets. After the runs, when the latest run fanned out, its progress per
child source (the document's ``children``): parents done / total, child jobs by state and the
newest failed parents' keys with their errors; a child source that run gave no job says why."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .chart import runs_chart
from .layout import cell, e, number, page, table

_RUN_HEADERS = ("run", "started", "duration", "outcome", "jobs", "fetched", "loaded", "updated", "deleted",
                "duplicate", "rejected", "error")
_FAN_OUT_HEADERS = ("child source", "parents done / total", "failed", "pending", "requests skipped", "jobs queued",
                    "running", "failed", "loaded")
_COUNTS = ("fetched", "loaded", "updated", "deleted", "duplicate", "rejected")


def source_href(name: str) -> str:
    """The address of the page of source ``name``."""
    return "/sources/" + quote(name, safe="")


def render_source_page(document: dict[str, Any]) -> str:
    """The HTML page of a source document."""
    name = str(document["source"])
    body = [f'<h1 id="source" data-source="{e(name)}">{e(name)}</h1>',
            f'<div class="overview">{_facts(document)}<figure class="runs">{runs_chart(document["runs"])}'
            f"<figcaption>records per run, the last {e(document['window_days'])} days</figcaption></figure></div>",
            f"<h2>runs of the last {e(document['window_days'])} days</h2>",
            _runs_table(document["runs"]),
            *_fan_out(document.get("children") or []),
            "<h2>why records were rejected</h2>", *_rejects(document["rejects"]),
            "<h2>datasets</h2>", _datasets(document)]
    return page(f"source {name}", str(document["generated_at"]), "/status" + source_href(name), body)


def _facts(document: dict[str, Any]) -> str:
    catalog = document.get("catalog") or {}
    cursor = document.get("cursor")
    interval = catalog.get("interval_seconds")
    facts = [("dataset", catalog.get("dataset") or "-"), ("kind", catalog.get("kind") or "-"),
             ("queue", catalog.get("queue") or "the default queue"),
             ("schedule", f"every {interval}s" if interval else f"cron {catalog['schedule']} (UTC)"
                          if catalog.get("schedule") else "not scheduled"),
             ("next run", document.get("next_run") or "-"),
             ("cursor", f"{cursor['field']} = {json.dumps(cursor['position'])} (set by {cursor['run_id']} at "
                        f"{cursor['updated_at']})" if cursor else "none")]
    if not catalog:
        facts.insert(0, ("catalog", "not in this server's catalog"))
    items = "".join(f'<dt>{e(label)}</dt><dd class="{e(label.replace(" ", "-"))}">{e(value)}</dd>'
                    for label, value in facts)
    return f'<dl class="facts">{items}</dl>'


def _runs_table(runs: list[dict[str, Any]]) -> str:
    """The runs, with what each one's replace switch did when the source has any (a replace dataset)."""
    switched = any(run.get("replace") for run in runs)
    headers = (*_RUN_HEADERS[:4], "replace switch", *_RUN_HEADERS[4:]) if switched else _RUN_HEADERS
    return table("runs", headers, (_run_row(run, switched) for run in runs), "no runs in this window")


def _run_row(run: dict[str, Any], switched: bool = False) -> str:
    seconds = run.get("seconds")
    cells = [cell(run["run_id"]), cell(run.get("started_at") or "-"),
             cell("-" if seconds is None else f"{seconds:.1f} s", "n duration"),
             cell(run["outcome"], f"outcome {run['outcome']}"), *([_switch_cell(run)] if switched else []),
             cell(number(run["jobs"]), "n jobs"),
             *(cell(number(run[count]), f"n {count}") for count in _COUNTS), cell(run.get("error") or "", "error")]
    return f'<tr id="run-{e(run["run_id"])}" data-run="{e(run["run_id"])}">{"".join(cells)}</tr>'


def _switch_cell(run: dict[str, Any]) -> str:
    """What the run's replace switch did, in a few words; its whole sentence as the cell's title."""
    switch = run.get("replace")
    if not switch:
        return '<td class="switch none" title="no switch recorded: a job of the run has not ended">none yet</td>'
    words = ("refused: replaced nothing" if switch["outcome"] == "refused"
             else f"replaced: {number(switch['deleted'])} rows gone")
    return f'<td class="switch {e(switch["outcome"])}" title="{e(switch["switch"])}">{e(words)}</td>'


def _rejects(rejects: dict[str, Any]) -> list[str]:
    runs = rejects.get("runs") or []
    if not rejects.get("reasons"):
        return [f'<p class="empty" id="rejects">no record rejected in the last {len(runs)} runs</p>']
    parts = [f'<p class="note" id="rejects">the commonest reasons over the newest {len(runs)} runs '
             "(a record rejected again is stored once, under its first run)</p>"]
    for index, reason in enumerate(rejects["reasons"]):
        samples = "".join(_sample(sample) for sample in reason["samples"])
        parts.append(f'<section class="reason" data-reason="{e(reason["reason"])}" data-count="{int(reason["count"])}">'
                     f'<h3><span class="count">{number(reason["count"])}</span> × {e(reason["reason"])} '
                     f'<span class="note">(stage {e(reason["stage"])})</span></h3>'
                     f'<details id="reason-{index}"><summary>{len(reason["samples"])} of these records, as served'
                     f"</summary>{samples}</details></section>")
    return parts


def _sample(sample: dict[str, Any]) -> str:
    payload = json.dumps(sample["payload"], indent=2, ensure_ascii=False, sort_keys=True)
    run = e(sample["run_id"])
    return (f'<p class="note">{e(sample["reason"])}: job {e(sample["job_id"])} of run <a href="#run-{run}">{run}</a>'
            f', at {e(sample["rejected_at"])}</p><pre class="payload">{e(payload)}</pre>')


def _datasets(document: dict[str, Any]) -> str:
    rows = [f'<tr data-dataset="{e(d["name"])}">{cell(d["name"] or "-", "nested" if d.get("nested") else "")}'
            f'{cell(number(d["loaded"]), "n loaded")}'
            f'{cell(number(d["updated"]), "n updated")}{cell(number(d.get("deleted")), "n deleted")}'
            f'{cell(number(d["rejected"]), "n rejected")}</tr>' for d in document.get("datasets", [])]
    return table("datasets", ("dataset", f"loaded {document['window_days']}d", "updated", "deleted", "rejected"), rows,
                 "no dataset")


def _fan_out(children: list[dict[str, Any]]) -> list[str]:
    if not children:
        return []
    run_id = next((child["run_id"] for child in children if child.get("run_id")), None)
    parts = [f"<h2>fan-out progress of run {e(run_id)}</h2>" if run_id else "<h2>child sources</h2>",
             table("fan-out", _FAN_OUT_HEADERS, (_child_row(child) for child in children), "")]
    for child in children:
        if child["failed_parents"]:
            items = "".join(f'<li data-key="{e(f["key"])}"><code class="key">{e(f["key"])}</code> at {e(f["at"])}: '
                            f'<span class="error">{e(f.get("error") or "")}</span></li>'
                            for f in child["failed_parents"])
            parts.append(f'<h3>failed parents of {e(child["source"])}, newest first</h3>'
                         f'<ul class="failed-parents" data-child="{e(child["source"])}">{items}</ul>')
    return parts


def _child_row(child: dict[str, Any]) -> str:
    parents, jobs = child["parents"], child["jobs"]
    link = f'<td><a href="{e(source_href(child["source"]))}">{e(child["source"])}</a></td>'
    if child.get("state"):  # no job of it in that run: why, in a sentence
        return (f'<tr data-child="{e(child["source"])}">{link}'
                f'<td class="state" colspan="{len(_FAN_OUT_HEADERS) - 1}">{e(child["state"])}</td></tr>')
    cells = [link,
             cell(f"{number(parents['done'])} / {number(parents['total'])}", "n parents"),
             *(cell(number(parents[state]), f"n parents-{state}") for state in ("failed", "pending")),
             cell(number(child.get("skipped")), "n skipped"),
             *(cell(number(jobs[state]), f"n jobs-{state}") for state in ("queued", "running", "failed")),
             cell(number(child.get("loaded")), "n loaded")]
    return f'<tr data-child="{e(child["source"])}">{"".join(cells)}</tr>'
