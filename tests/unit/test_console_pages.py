"""The console's pages from hand-made documents: hostile values come out escaped on every page, the
chart's bars carry the documents' numbers, rejected records are redacted, and the next run is the
start of the source's next schedule slot."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ingest_workers.core.models import SourceSpec
from ingest_workers.ops.console.chart import LABEL_WIDTH, WIDTH, runs_chart
from ingest_workers.ops.console.documents import _next_run
from ingest_workers.ops.console.layout import static_file
from ingest_workers.ops.console.redaction import HIDDEN, PayloadRedactor
from ingest_workers.ops.console.source_page import render_source_page
from ingest_workers.ops.console.text import format_source
from ingest_workers.ops.console.workers_page import render_workers_page
from ingest_workers.ops.status import waiting_child
from ingest_workers.ops.status_page import render_page
from tests.dom import Dom

HOSTILE = '<script>alert("x")</script>&"\''


def _run(run_id: str, **counts: int) -> dict[str, Any]:
    base = {"fetched": 0, "loaded": 0, "updated": 0, "deleted": 0, "duplicate": 0, "rejected": 0}
    return {"run_id": run_id, "started_at": "2026-12-01T10:00:00+00:00", "finished_at": None, "seconds": 1.5,
            "outcome": "failed", "jobs": 1, **base, **counts, "error": HOSTILE}


def source_document() -> dict[str, Any]:
    sample = {"reason": HOSTILE, "run_id": HOSTILE, "job_id": HOSTILE, "rejected_at": "2026-12-01T10:00:00+00:00",
              "payload": {"name": HOSTILE}}
    return {"generated_at": HOSTILE, "source": HOSTILE, "window_days": 7,
            "catalog": {"kind": HOSTILE, "dataset": HOSTILE, "queue": HOSTILE, "interval_seconds": 60,
                        "cursor_field": HOSTILE},
            "next_run": HOSTILE, "cursor": {"field": HOSTILE, "position": HOSTILE, "run_id": HOSTILE, "job_id": "j",
                                            "updated_at": HOSTILE},
            "runs": [_run(HOSTILE, fetched=12, loaded=7, rejected=3, duplicate=2), _run("r-old", updated=4)],
            "totals": {}, "rejects": {"runs": [HOSTILE], "reasons": [{"reason": HOSTILE, "stage": HOSTILE, "count": 3,
                                                                       "samples": [sample]}]},
            "datasets": [{"name": HOSTILE, "loaded": 7, "updated": 4, "rejected": 3}],
            "children": [_child(HOSTILE)]}


def _child(name: str) -> dict[str, Any]:
    return {"source": name, "run_id": HOSTILE, "loaded": 40, "skipped": 4,
            "parents": {"total": 9, "done": 5, "skipped": 1, "failed": 1, "pending": 2},
            "jobs": {"queued": 3, "running": 1, "failed": 2},
            "failed_parents": [{"key": HOSTILE, "error": HOSTILE, "at": "2026-12-01T10:00:00+00:00"},
                               {"key": "p-old", "error": None, "at": "2026-12-01T09:00:00+00:00"}]}


def workers_document() -> dict[str, Any]:
    job = {"job_id": HOSTILE, "source": HOSTILE, "run_id": HOSTILE, "at": HOSTILE}
    return {"generated_at": HOSTILE,
            "workers": [{"name": HOSTILE, "hostname": HOSTILE, "pid": 12, "state": HOSTILE, "queues": [HOSTILE],
                         "birth": HOSTILE, "last_heartbeat": HOSTILE, "current_job": job}],
            "queues": [{"name": HOSTILE, "queued": 2, "started": 1, "scheduled": 1, "deferred": 1, "failed": 0,
                        "finished": 0, "workers": 1, "oldest_queued_at": HOSTILE, "oldest_queued_seconds": 3.0,
                        "scheduled_jobs": [job], "deferred_jobs": [job]}]}


def status_document() -> dict[str, Any]:
    source = {"last_run": {"run_id": HOSTILE, "status": HOSTILE, "started_at": HOSTILE}, "jobs": 1, "succeeded": 0,
              "success_rate": 0.0, "health": HOSTILE, "loaded": 5,
              "recent_failures": [{"job_id": HOSTILE, "at": HOSTILE, "error": HOSTILE}]}
    return {"generated_at": HOSTILE, "window_hours": 24, "sources": {HOSTILE: source},
            "queues": {HOSTILE: {"queued": 1}}}


def test_every_page_escapes_every_value() -> None:
    pages = [render_source_page(source_document()), render_workers_page(workers_document()),
             render_page(status_document()), render_page(None, HOSTILE)]
    for html in pages:
        assert "<script>alert" not in html and 'alert("x")' not in html
        assert html.count("<script") == 1  # the console's own script, from the server
        assert Dom.parse(html).find_all("script")[0].attrs["src"] == "/static/console.js"


def test_the_chart_draws_each_run_with_its_numbers_oldest_first() -> None:
    runs = [_run("new", loaded=7, rejected=3, duplicate=2), _run("old", updated=4, deleted=6)]
    chart = Dom.parse(runs_chart(runs))
    bars = [(b.attrs["data-run"], b.attrs["data-kind"], int(b.attrs["data-value"])) for b in chart.find_all("rect")
            if "data-run" in b.attrs]
    assert bars == [("old", "updated", 4), ("old", "deleted", 6), ("new", "loaded", 7), ("new", "duplicate", 2),
                    ("new", "rejected", 3)]
    heights = {b.attrs["data-kind"]: float(b.attrs["height"]) for b in chart.find_all("rect", data_run="new")}
    assert abs(heights["loaded"] / heights["rejected"] - 7 / 3) < 0.01
    assert "no runs yet" in runs_chart([])


def test_no_run_s_label_runs_past_the_chart_s_right_edge() -> None:
    anchored_at_end = 0
    for count in range(1, 31):
        runs = [{**_run(f"r{i}", loaded=i + 1), "started_at": f"2026-12-01T10:{i:02}:00+00:00"}
                for i in reversed(range(count))]  # newest first, as in a document
        labels = Dom.parse(runs_chart(runs)).find_all("text", cls="label")
        assert labels[0].text == "12-01 10:00"  # the oldest run's, on the left
        for label in labels:
            x = float(label.attrs["x"])
            ends = label.attrs.get("text-anchor") == "end"
            assert (x <= WIDTH - 8) if ends else (x + LABEL_WIDTH <= WIDTH), (count, x)
            anchored_at_end += ends
    assert anchored_at_end  # some label would have been cut off


def test_rejected_records_show_no_value_of_the_environment_and_no_auth_header() -> None:
    spec = SourceSpec(name="s", kind="http_json", dataset="products", url="http://x/${API_HOST}/items",
                      auth_env="SHOP_TOKEN", auth_header="X-Shop-Auth")
    redactor = PayloadRedactor([spec], {"SHOP_TOKEN": "tok-123456", "API_HOST": "internal.example", "OTHER": "keep"})
    record = {"id": 1, "note": "sent tok-123456 to internal.example", "X-Shop-Auth": "anything",
              "nested": [{"authorization": "Basic abc"}], "url": "postgresql://u:pw@db/x", "other": "keep"}
    assert redactor.redact(record) == {
        "id": 1, "note": "sent ${SHOP_TOKEN} to ${API_HOST}", "X-Shop-Auth": HIDDEN,
        "nested": [{"authorization": HIDDEN}], "url": "postgresql://u:***@db/x", "other": "keep"}


def test_the_next_run_is_the_start_of_the_next_slot() -> None:
    spec = SourceSpec(name="s", kind="synthetic", dataset="sensors", interval_seconds=900)
    now = datetime(2026, 12, 1, 10, 7, 30, tzinfo=UTC)
    assert _next_run(spec, now) == "2026-12-01T10:15:00+00:00"
    assert _next_run(spec, datetime(2026, 12, 1, 10, 15, tzinfo=UTC)) == "2026-12-01T10:30:00+00:00"
    assert _next_run(SourceSpec(name="s", kind="synthetic", dataset="sensors"), now) is None
    nightly = SourceSpec(name="s", kind="synthetic", dataset="sensors", schedule="0 3 * * *")
    assert _next_run(nightly, now) == "2026-12-02T03:00:00+00:00"  # a cron schedule, the scheduler's slots


def test_the_static_files_are_shipped_and_nothing_else_is_served() -> None:
    script, kind = static_file("console.js") or (b"", "")
    assert b"DOMParser" in script and kind.startswith("text/javascript")
    assert static_file("../documents.py") is None and static_file("console.css") is not None


def test_the_fan_out_progress_shows_each_child_s_numbers_and_its_failed_keys_escaped() -> None:
    document = {**source_document(), "children": [_child(HOSTILE), _child("reviews")]}
    html = render_source_page(document)
    assert "<script>alert" not in html and html.count("&lt;script&gt;alert") > 0
    dom = Dom.parse(html)
    row = dom.find_all("tr", data_child="reviews")[0]
    cells = {c.attrs["class"]: c.text for c in row.find_all("td") if "class" in c.attrs}
    assert cells == {"n parents": "5 / 9", "n parents-failed": "1", "n skipped": "4",
                     "n parents-pending": "2", "n jobs-queued": "3", "n jobs-running": "1", "n jobs-failed": "2",
                     "n loaded": "40"}
    failed = dom.find_all("ul", data_child="reviews")[0].find_all("li")
    assert [li.attrs["data-key"] for li in failed] == [HOSTILE, "p-old"]  # the document's order: newest first
    assert HOSTILE in failed[0].text
    assert "fan-out progress" not in render_source_page({**source_document(), "children": []})


def test_a_child_source_without_jobs_says_why_on_the_page_and_in_the_text() -> None:
    waiting = {**_child("details"), "state": "no jobs: its parent shop's latest run r1 ended failed without fanning "
                                             "out to it", "failed_parents": []}
    document = {**source_document(), "runs": [_run("r1", deleted=5)], "children": [_child("reviews"), waiting]}
    row = Dom.parse(render_source_page(document)).find_all("tr", data_child="details")[0]
    assert row.first("td", cls="state").text == waiting["state"]
    assert Dom.parse(render_source_page(document)).first("tr", data_run="r1").first("td", cls="deleted").text == "5"
    text = format_source(document)
    assert f"  details: {waiting['state']}" in text
    assert ("  reviews: parents done 5 / 9, failed 1, pending 2, requests skipped 4; child jobs queued 3, "
            "running 1, failed 2; loaded 40") in text
    assert f"    failed parent {HOSTILE}: {HOSTILE}" in text and "    failed parent p-old" in text


def test_a_child_source_s_state_follows_its_parent_s_latest_run() -> None:
    assert waiting_child("shop", None, None) == "never run: its parent shop has not run yet"
    for running in ("running", "enqueued", "started"):
        assert waiting_child("shop", "r2", running) == "no jobs yet: its parent shop's run r2 is still running"
    assert waiting_child("shop", "r1", "failed") == \
        "no jobs: its parent shop's latest run r1 ended failed without fanning out to it"


def test_a_replace_source_s_runs_show_what_each_switch_did() -> None:
    replaced = {"outcome": "replaced", "deleted": 3, "nested": {"items_labels": 2},
                "switch": "run r2 replaced the rows of source s in items: 3 gone, 1 new or changed"}
    refused = {"outcome": "refused", "deleted": 0, "nested": {},
               "switch": "run r3 replaced nothing in items: not every job of source s finished (1 failed)"}
    runs = [_run("r3", fetched=4, loaded=4), {**_run("r2", fetched=5, loaded=1, deleted=5), "replace": replaced},
            {**_run("r1", fetched=9, loaded=9), "replace": None}]
    runs[0]["replace"] = refused
    dom = Dom.parse(render_source_page({**source_document(), "runs": runs}))
    assert dom.first("tr", data_run="r2").first("td", cls="deleted").text == "5"  # the document's, flagged + switched
    assert [b.attrs["data-value"] for b in dom.find_all("rect", data_run="r2", data_kind="deleted")] == ["5"]
    switches = {row.attrs["data-run"]: row.first("td", cls="switch") for row in dom.find_all("tr", data_run=None)}
    assert switches["r3"].attrs["class"] == "switch refused" and switches["r3"].text == "refused: replaced nothing"
    assert switches["r3"].attrs["title"] == refused["switch"]
    assert switches["r2"].attrs["class"] == "switch replaced" and switches["r2"].text == "replaced: 3 rows gone"
    assert switches["r2"].attrs["title"] == replaced["switch"]
    assert switches["r1"].attrs["class"] == "switch none" and switches["r1"].text == "none yet"
    assert "replace switch" in dom.first("table", id="runs").text
    text = format_source({**source_document(), "runs": runs})
    assert f"r3: {refused['switch']}" in text and f"r2: {replaced['switch']}" in text
    labels = {"name": "items_labels", "nested": True, "loaded": 9, "updated": 0, "deleted": 2, "rejected": 0}
    with_nested = Dom.parse(render_source_page({**source_document(), "datasets": [
        {"name": "items", "nested": False, "loaded": 4, "updated": 0, "deleted": 3, "rejected": 0}, labels]}))
    row = with_nested.first("tr", data_dataset="items_labels")
    assert row.first("td", cls="nested").text == "items_labels" and row.first("td", cls="deleted").text == "2"
    plain = Dom.parse(render_source_page({**source_document(), "runs": [_run("r1", deleted=2)]}))
    assert "replace switch" not in plain.first("table", id="runs").text and not plain.find_all("td", cls="switch")
