"""The shipped stages beyond map/validate/enrich: pure, lazy, and refusing with reasons."""

from __future__ import annotations

import pytest

from ingest_workers.core.errors import ConfigError
from ingest_workers.core.models import Record, Rejected
from ingest_workers.stages.registry import make_stage
from ingest_workers.stages.series import MovingAverage, Normalise, ThresholdFilter
from ingest_workers.stages.text import PumpSignal, Sentiment

RANGES = {"temperature": [-40, 125], "flow": [0, 100]}


def readings(*values: tuple[str, str, float]) -> list[Record]:
    return [Record(raw={"i": i}, row={"sensor_id": s, "kind": k, "value": v}) for i, (s, k, v) in enumerate(values)]


def test_threshold_refuses_out_of_range_values_per_series_with_the_range_in_the_reason() -> None:
    stage = ThresholdFilter(series="kind", ranges=RANGES)
    out = list(stage.process(readings(("a", "temperature", 130), ("b", "flow", 50), ("c", "flow", -0.5))))
    assert [type(i).__name__ for i in out] == ["Rejected", "Record", "Rejected"]
    assert out[0].reason == "value: 130 outside the valid range [-40, 125]" and out[0].stage == "threshold"
    assert out[2].reason == "value: -0.5 outside the valid range [0, 100]"


def test_threshold_with_one_range_and_a_missing_value() -> None:
    out = list(ThresholdFilter(maximum=10).process([Record({}, {"value": 11}), Record({}, {"value": None})]))
    assert [o.reason for o in out] == ["value: 11 outside the valid range [-inf, 10]",
                                       "value: expected a finite number, got NoneType"]


def test_normalise_maps_the_declared_range_to_0_1_and_clamps() -> None:
    stage = Normalise(series="kind", ranges=RANGES)
    out = list(stage.process(readings(("a", "temperature", -40), ("a", "temperature", 125), ("b", "flow", 25),
                                       ("b", "flow", 150))))
    assert [o.row["normalised"] for o in out] == [0.0, 1.0, 0.25, 1.0]


def test_normalise_without_a_range_refuses() -> None:
    [out] = Normalise().process(readings(("a", "pressure", 5)))
    assert isinstance(out, Rejected) and out.reason == "value: no declared range to normalise against"


def test_moving_average_is_per_series_over_the_last_n() -> None:
    stage = MovingAverage(series="sensor_id", window=2)
    out = list(stage.process(readings(("a", "flow", 1), ("b", "flow", 10), ("a", "flow", 3), ("a", "flow", 5))))
    assert [o.row["moving_avg"] for o in out] == [1.0, 10.0, 2.0, 4.0]


def test_each_stream_starts_a_fresh_average() -> None:
    stage = MovingAverage(window=3)
    assert [o.row["moving_avg"] for o in stage.process(readings(("a", "flow", 9)))] == [9.0]
    assert [o.row["moving_avg"] for o in stage.process(readings(("a", "flow", 3)))] == [3.0]


def test_series_stages_are_lazy_and_pass_rejections_through() -> None:
    pulled = []

    def endless():
        yield Rejected({"x": 1}, "earlier", "map")
        i = 0
        while True:
            pulled.append(i)
            yield Record({}, {"sensor_id": "a", "kind": "flow", "value": i % 100})
            i += 1

    stream = MovingAverage().process(Normalise(series="kind", ranges=RANGES).process(
        ThresholdFilter(series="kind", ranges=RANGES).process(endless())))
    assert isinstance(next(stream), Rejected)
    next(stream)
    assert pulled == [0]


@pytest.mark.parametrize(
    ("text", "label", "pump"),
    [
        ("$TSLA to the moon 🚀 buy now!", "positive", True),
        ("$AAPL beat earnings, strong quarter", "positive", False),
        ("$GME crash incoming, sell", "negative", False),
        ("Watching $MSFT today", "neutral", False),
        ("$XYZ 100x next gem, last chance", "neutral", True),
        ("$XYZ all in, fraud or not", "negative", False),
    ],
)
def test_sentiment_and_pump_signal(text: str, label: str, pump: bool) -> None:
    [out] = PumpSignal().process(Sentiment().process([Record({}, {"text": text})]))
    assert (out.row["sentiment"], out.row["pump_signal"]) == (label, pump)


def test_stage_entries_from_the_catalog() -> None:
    assert isinstance(make_stage("sentiment"), Sentiment)
    assert make_stage({"name": "moving_average", "window": 3}).window == 3
    assert make_stage({"name": "tests.plugins:ShoutTitles", "suffix": "?"}).suffix == "?"
    for entry, message in ((["x"], "a stage is a name or a table"), ("sparkle", "unknown stage 'sparkle'"),
                           ({"name": "threshold", "ranges": {"flow": [1]}}, "ranges.flow must be"),
                           ({"name": "threshold", "ranges": {"flow": [5, 1]}}, "minimum < maximum"),
                           ({"name": "threshold", "ranges": {"flow": [0, 1]}}, "'ranges' needs 'series'"),
                           ({"name": "pump_signal", "min_markers": 0}, "min_markers")):
        with pytest.raises(ConfigError, match=message):
            make_stage(entry)
