"""Window stepping, look-back and first runs: durations, marks as moments, a request's time format,
the read plan of a job, and the catalog keys that configure them."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest_workers.catalog import load_catalog
from ingest_workers.core.errors import ConfigError
from ingest_workers.core.models import SourceSpec, Window
from ingest_workers.core.timewindows import (
    as_mark,
    for_request,
    halves,
    parse_duration,
    step_windows,
    to_moment,
)
from ingest_workers.pipeline.windows import ReadPlan

NOW = datetime(2024, 1, 20, 12, 0, tzinfo=UTC)


def spec(**keys: object) -> SourceSpec:
    return SourceSpec(name="deals", kind="http_json", dataset="products", url="http://127.0.0.1:1/",
                      cursor_field="updated_at", **keys)


@pytest.mark.parametrize(("text", "expected"), [
    ("15m", timedelta(minutes=15)), ("7d", timedelta(days=7)), ("1h30m", timedelta(minutes=90)),
    ("45s", timedelta(seconds=45)), ("2w", timedelta(days=14)), (" 6H ", timedelta(hours=6)),
])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "7 days", "0m", "-5m", "7d!", "d7"])
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_marks_read_as_moments_and_written_back_as_they_came() -> None:
    moment = datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)
    for mark in ("2024-01-01T00:00:30Z", "2024-01-01T00:00:30+00:00", "2024-01-01T01:00:30+01:00", 1704067230):
        assert to_moment(mark) == moment
    assert to_moment(1704067230000, "unix_ms") == moment
    assert as_mark(moment, "2023-01-01T00:00:00Z") == "2024-01-01T00:00:30Z"
    assert as_mark(moment, 5) == 1704067230
    assert as_mark(moment, 5, "unix_ms") == 1704067230000
    with pytest.raises(ValueError):
        to_moment("yesterday")


def test_a_moment_as_a_request_sends_it() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert for_request(moment, None) == "2024-01-02T03:04:05Z"
    assert for_request(moment, "unix") == "1704164645"
    assert for_request(moment, "unix_ms") == "1704164645000"
    assert for_request(moment, "%Y-%m-%d") == "2024-01-02"


def test_windows_step_from_start_to_end_the_last_shorter() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    windows = list(step_windows(start, start + timedelta(days=17), timedelta(days=7)))
    assert [(s.day, u.day) for s, u in windows] == [(1, 8), (8, 15), (15, 18)]
    assert list(step_windows(start, start, timedelta(days=7))) == []
    assert halves(start, start + timedelta(days=1)) == [(start, start + timedelta(hours=12)),
                                                         (start + timedelta(hours=12), start + timedelta(days=1))]
    assert halves(start, start + timedelta(seconds=1)) == []


def test_a_first_run_starts_at_initial_value_and_later_ones_at_the_mark() -> None:
    assert [p.since for p in ReadPlan(spec(), None, None, NOW).parts()] == [None]
    first = ReadPlan(spec(initial_value="2024-01-01T00:00:00Z"), None, None, NOW)
    assert [(p.since, p.until, p.mark) for p in first.parts()] == [("2024-01-01T00:00:00Z", None, None)]
    assert first.marks_from_records
    later = ReadPlan(spec(initial_value="2024-01-01T00:00:00Z"), "2024-01-10T08:00:00+00:00", None, NOW)
    assert [p.since for p in later.parts()] == ["2024-01-10T08:00:00+00:00"]  # as stored: no time needed


def test_lookback_asks_from_before_the_mark() -> None:
    plan = ReadPlan(spec(lookback="15m"), "2024-01-10T08:00:00Z", None, NOW)
    assert [p.since for p in plan.parts()] == ["2024-01-10T07:45:00Z"]
    first = ReadPlan(spec(lookback="15m", initial_value="2024-01-01T00:00:00Z"), None, None, NOW)
    assert [p.since for p in first.parts()] == ["2024-01-01T00:00:00Z"]  # a start, not a mark: nothing is late
    unix = ReadPlan(spec(lookback="1h", time_format="unix"), 1704873600, None, NOW)
    assert [p.since for p in unix.parts()] == [str(1704873600 - 3600)]


def test_a_windowed_run_steps_from_the_mark_minus_lookback_to_its_start() -> None:
    plan = ReadPlan(spec(initial_value="2024-01-01T00:00:00Z", window="7d", lookback="1h"),
                    "2024-01-03T01:00:00Z", None, NOW)
    parts = list(plan.parts())
    assert [(p.since, p.until) for p in parts] == [
        ("2024-01-03T00:00:00Z", "2024-01-10T00:00:00Z"),
        ("2024-01-10T00:00:00Z", "2024-01-17T00:00:00Z"),
        ("2024-01-17T00:00:00Z", "2024-01-20T12:00:00Z")]
    assert [p.mark for p in parts] == [p.until for p in parts]  # each window read whole moves the mark to its end
    assert not plan.marks_from_records


def test_a_capped_window_is_cut_in_two_and_read_next() -> None:
    plan = ReadPlan(spec(initial_value="2024-01-01T00:00:00Z", window="7d", max_records_per_window=100),
                    None, None, datetime(2024, 1, 10, tzinfo=UTC))
    parts = plan.parts()
    first = next(parts)
    assert not plan.capped(99) and plan.capped(100)
    assert plan.cut(first)
    assert [(p.since, p.until, p.mark) for p in parts] == [
        ("2024-01-01T00:00:00Z", "2024-01-04T12:00:00Z", "2024-01-04T12:00:00Z"),
        ("2024-01-04T12:00:00Z", "2024-01-08T00:00:00Z", "2024-01-08T00:00:00Z"),
        ("2024-01-08T00:00:00Z", "2024-01-10T00:00:00Z", "2024-01-10T00:00:00Z")]


def test_a_backfill_window_is_stepped_by_the_source_s_window_and_never_moves_the_mark() -> None:
    window = Window("2024-01-01T00:00:00+00:00", "2024-01-15T00:00:00+00:00")
    plan = ReadPlan(spec(initial_value="2023-01-01T00:00:00Z", window="7d", time_format="%Y-%m-%d"),
                    "2024-01-19T00:00:00Z", window, NOW)
    assert [(p.since, p.until, p.mark) for p in plan.parts()] == [("2024-01-01", "2024-01-08", None),
                                                                   ("2024-01-08", "2024-01-15", None)]
    unwindowed = ReadPlan(spec(), "2024-01-19T00:00:00Z", window, NOW)
    assert [(p.since, p.until) for p in unwindowed.parts()] == [(window.since, window.until)]
    unix = ReadPlan(spec(time_format="unix"), None, window, NOW)
    assert [(p.since, p.until) for p in unix.parts()] == [("1704067200", "1705276800")]


CATALOG = """
[sources.deals]
kind = "http_json"
dataset = "products"
url = "http://127.0.0.1:1/deals"
cursor_field = "updated_at"
until_param = "before"
"""


def load(tmp_path: Path, extra: str) -> SourceSpec:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG + extra, encoding="utf-8")
    return load_catalog(path, {}).sources["deals"]


def test_the_catalog_takes_the_time_keys(tmp_path: Path) -> None:
    loaded = load(tmp_path, 'initial_value = 2024-01-01T00:00:00Z\nlookback = "15m"\nwindow = "7d"\n'
                            'max_records_per_window = 1000\ntime_format = "unix"\n')
    assert (loaded.initial_value, loaded.lookback, loaded.window) == ("2024-01-01T00:00:00Z", "15m", "7d")
    assert (loaded.max_records_per_window, loaded.time_format) == (1000, "unix")
    assert SourceSpec.from_dict(loaded.to_dict()) == loaded  # it travels in the job


@pytest.mark.parametrize(("extra", "message"), [
    ('lookback = "15 minutes"', "key 'lookback': expected a duration"),
    ('window = "0d"\ninitial_value = "2024-01-01T00:00:00Z"', "key 'window': expected a duration longer than 0"),
    ('window = "7d"', "key 'window': the first run steps from initial_value"),
    ('time_format = "epoch"', "key 'time_format': expected one of iso, unix, unix_ms"),
    ('max_records_per_window = 100', "key 'max_records_per_window': a capped window is split: set window"),
    ('max_records_per_window = 0\nwindow = "1d"', "key 'max_records_per_window': expected a whole number"),
    ('window = "1d"\ninitial_value = "soon"', "key 'initial_value': 'soon' is not an ISO 8601 time"),
    ('initial_value = [1]', "key 'initial_value': expected a time or a number"),
])
def test_bad_time_keys_are_refused_naming_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, extra + "\n")


def test_a_csv_file_has_no_windows(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.replace('"http_json"', '"csv"') + 'window = "1d"\ninitial_value = "2024-01-01"\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="key 'window': a CSV file cannot be asked for a range"):
        load_catalog(path, {})


def test_the_time_keys_need_a_cursor_field(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.replace('cursor_field = "updated_at"\n', "") + 'lookback = "1h"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="key 'lookback': only a source with a cursor_field"):
        load_catalog(path, {})
