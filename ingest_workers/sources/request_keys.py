"""Checks of the catalog keys that shape a request and walk time (docs/sources.md, "Time" and
"Request shape"): ``method``, ``body``, the placeholders of the request, ``initial_value``,
``lookback``, ``window``, ``max_records_per_window``, ``time_format``. Every error names the key.
The same checks run on a catalog entry and on a job's source (:mod:`ingest_workers.catalog`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from ..core.errors import ConfigError
from ..core.timewindows import check_time_format, iso, parse_duration, to_moment
from .templates import texts_in, unknown_placeholders


def check_request_keys(where: str, values: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the key when a request or time key of ``values`` is wrong;
    a TOML date in ``initial_value`` becomes ISO text (a job carries JSON)."""
    _check_shape(where, values)
    _check_time(where, values)


def _check_shape(where: str, values: dict[str, Any]) -> None:
    """``method`` and ``body``, and the placeholders of the request (docs/sources.md, "Request shape"):
    an unknown one is refused. A GraphQL ``query`` text in the body keeps its own braces."""
    method = values.get("method", "GET")
    if method not in ("GET", "POST"):
        raise ConfigError(f"{where} key 'method': expected \"GET\" or \"POST\", got {method!r}")
    if "body" in values and (method != "POST" or not isinstance(values["body"], (dict, list))):
        raise ConfigError(f"{where} key 'body': a JSON body is a table sent with method = \"POST\"")
    body = values.get("body")
    texts = [("url", values.get("url", "")),
             *((f"params.{k}", v) for k, v in values.get("params", {}).items() if isinstance(v, str)),
             *((f"headers.{k}", v) for k, v in values.get("headers", {}).items()),
             *(("body", text) for key, value in (body.items() if isinstance(body, dict) else [("", body)])
               if key != "query" for text in texts_in(value))]
    for key, text in texts:
        unknown = unknown_placeholders(text)
        if unknown:
            raise ConfigError(f"{where} key {key!r}: unknown placeholder {unknown[0]}; known: "
                              f"{{since}}, {{until}}, {{page}}, {{offset}}, {{cursor}}, {{parent.PATH}}, "
                              "{partition.NAME}")
    if "window" in values and not values.get("until_param") and not any("{until}" in t for _, t in texts):
        raise ConfigError(f"{where} key 'window': each window ends at {{until}}: set until_param or put "
                          "{until} in the request")


def _check_time(where: str, values: dict[str, Any]) -> None:
    """``initial_value``, ``lookback``, ``window``, ``max_records_per_window`` and ``time_format``
    (docs/sources.md, "Time"): each checked alone, then together (a window needs a start and a cursor)."""
    if isinstance(values.get("initial_value"), (datetime, date)):  # TOML's own dates travel as ISO text
        values["initial_value"] = iso(to_moment(values["initial_value"].isoformat()))
    for key in ("lookback", "window"):
        if key in values:
            try:
                parse_duration(values[key])
            except ValueError as exc:
                raise ConfigError(f"{where} key {key!r}: {exc}") from None
    if "time_format" in values:
        try:
            check_time_format(values["time_format"])
        except ValueError as exc:
            raise ConfigError(f"{where} key 'time_format': {exc}") from None
    capped = values.get("max_records_per_window")
    if capped is not None and (not isinstance(capped, int) or isinstance(capped, bool) or capped < 1):
        raise ConfigError(f"{where} key 'max_records_per_window': expected a whole number above 0, got {capped!r}")
    timed = [key for key in ("initial_value", "lookback", "window", "max_records_per_window") if key in values]
    if timed and not values.get("cursor_field"):
        raise ConfigError(f"{where} key {timed[0]!r}: only a source with a cursor_field reads incrementally")
    if "window" in values and values["kind"] == "csv":
        raise ConfigError(f"{where} key 'window': a CSV file cannot be asked for a range")
    if capped is not None and "window" not in values:
        raise ConfigError(f"{where} key 'max_records_per_window': a capped window is split: set window too")
    _check_time_start(where, values)


def _check_time_start(where: str, values: dict[str, Any]) -> None:
    """The first mark is a time when windows or a look-back are counted from it; a window needs one."""
    initial = values.get("initial_value")
    if initial is not None and ("window" in values or "lookback" in values):
        try:
            to_moment(initial, values.get("time_format"))
        except ValueError as exc:
            raise ConfigError(f"{where} key 'initial_value': {exc}; window and lookback count from it") from None
    elif initial is not None and (isinstance(initial, bool) or not isinstance(initial, (str, int, float))):
        raise ConfigError(f"{where} key 'initial_value': expected a time or a number, got {initial!r}")
    if "window" in values and initial is None:
        raise ConfigError(f"{where} key 'window': the first run steps from initial_value: set it too "
                          "(e.g. initial_value = \"2024-01-01T00:00:00Z\")")
