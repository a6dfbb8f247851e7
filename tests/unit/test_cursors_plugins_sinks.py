"""Pure parts of cursors, plugin names and sink entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest_workers.core.errors import ConfigError
from ingest_workers.core.models import Lineage
from ingest_workers.core.plugins import resolve, split_entry
from ingest_workers.datasets import PRODUCTS, SENSORS
from ingest_workers.load.cursors import highest, is_after
from ingest_workers.load.sinks import AlertSink, SinkContext, make_sink
from ingest_workers.runtime.producer import split_windows


def test_marks_compare_as_numbers_or_as_utc_iso_text() -> None:
    assert is_after(10, 9) and not is_after(9, 10) and is_after(2.5, 2)
    assert is_after("2026-01-01T00:00:00.500000+00:00", "2026-01-01T00:00:00+00:00")
    assert not is_after("2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00")
    assert is_after("2026-01-01T00:00:00+00:00", 5)  # the field's type changed: the new mark wins
    assert highest([None, "2026-01-02T00:00:00+00:00", "2026-01-01T23:59:59.999999+00:00", None]) \
        == "2026-01-02T00:00:00+00:00"
    assert highest([None]) is None and highest([3, 11, 2]) == 11


def _highest_one_by_one(values: list) -> object:
    """The mark as the loop over :func:`is_after` finds it (``highest`` takes ``max`` for one kind)."""
    best = None
    for value in values:
        if value is not None and (best is None or is_after(value, best)):
            best = value
    return best


@given(st.lists(st.one_of(st.none(), st.text(max_size=4), st.integers(), st.booleans(),
                          st.floats(allow_nan=False)), max_size=12)
       | st.lists(st.one_of(st.none(), st.text(max_size=4)), max_size=12)
       | st.lists(st.one_of(st.none(), st.integers()), max_size=12))
def test_the_highest_mark_is_the_one_the_comparison_finds(values: list) -> None:
    found, expected = highest(iter(values)), _highest_one_by_one(values)
    assert found == expected and type(found) is type(expected)


def test_a_natural_key_is_its_columns_text_joined() -> None:
    assert PRODUCTS.natural_key({"product_id": "SKU-1", "price": 2}) == "SKU-1"
    assert PRODUCTS.natural_key({"product_id": 17}) == "17"
    assert SENSORS.natural_key({"sensor_id": "s1", "ts": "2026-01-01T00:00:00Z", "x": 1}) == \
        "s1\x1f2026-01-01T00:00:00Z"


def test_plugin_names_resolve_to_classes() -> None:
    assert resolve("json:JSONDecoder", {}, "stage").__name__ == "JSONDecoder"
    assert resolve("x", {"x": int}, "stage") is int
    for name, message in (("not a name", "unknown stage 'not a name'"), ("no_such_module_xyz:C", "cannot import"),
                          ("json:Nope", "json has no Nope")):
        with pytest.raises(ConfigError, match=message):
            resolve(name, {"x": int}, "stage")
    assert split_entry({"name": "alerts", "above": 1}, "sink") == ("alerts", {"above": 1})
    with pytest.raises(ConfigError, match="a sink is a name or a table"):
        split_entry({"above": 1}, "sink")


CONTEXT = SinkContext(SENSORS, Lineage("s", "r", "j", "2026-01-01T00:00:00+00:00"), connection=lambda: None)  # type: ignore[arg-type,return-value]


def test_alert_rules() -> None:
    above = AlertSink(CONTEXT, field="normalised", above=0.9)
    assert [above.crosses(v) for v in (0.95, 0.9, None, True, float("nan"), "1")] == [True, False] + [False] * 4
    assert AlertSink(CONTEXT, field="value", below=-10).crosses(-11)
    for params, message in (({"field": "v"}, "exactly one of above or below"),
                            ({"field": "v", "above": 1, "below": 0}, "exactly one"),
                            ({"field": "v", "above": "high"}, "must be a number"),
                            ({"above": 1}, "sink alerts: .*field")):
        with pytest.raises(ConfigError, match=message):
            make_sink({"name": "alerts", **params}, CONTEXT)


def test_windows_cover_the_range_exactly() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    windows = split_windows(start, start + timedelta(hours=25), timedelta(days=1))
    assert [(w.since, w.until) for w in windows] == [
        ("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"),
        ("2026-01-02T00:00:00+00:00", "2026-01-02T01:00:00+00:00")]
    with pytest.raises(ConfigError, match="more than"):
        split_windows(start, start + timedelta(days=365), timedelta(minutes=1))
