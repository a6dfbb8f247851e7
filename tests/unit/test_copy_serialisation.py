"""The COPY serialiser's fast path writes exactly what the straightforward one wrote.

``_reference_copy_text`` is the loader's serialiser before the fast path (kept here
verbatim, with its own ``json.dumps`` per payload): for any row of the value types a
checked row or a decoded payload can hold, both must give the same text.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_workers.load.loader import CopyStream, copy_text, jsonb_text, payload_jsonb_text


def _reference_copy_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    return "".join("\t".join(_reference_field(row.get(c)) for c in columns) + "\n" for row in rows)


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _reference_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, list):
        quoted = ('"' + str(i).replace("\\", "\\\\").replace('"', '\\"') + '"' for i in value)
        return ("{" + ",".join(quoted) + "}").translate(_ESCAPES)
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return _reference_jsonb_text(value).translate(_ESCAPES)


def _reference_jsonb_text(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")
        if "\\u0000" not in text:
            return text
    except (ValueError, UnicodeEncodeError):
        pass
    return json.dumps(_reference_safe(value), ensure_ascii=False, separators=(",", ":"))


def _reference_safe(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_reference_safe(str(k)): _reference_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reference_safe(v) for v in value]
    return value


# Text with what COPY must escape, what jsonb refuses (NUL, lone surrogates) and non-ASCII.
TEXT = st.text(alphabet=st.sampled_from(["a", "Z", " ", "\\", "\t", "\n", "\r", '"', "\x00", "\ud800", "é", "🚀",
                                         "{", ",", "N"]) | st.characters(), max_size=12)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | TEXT
           | st.decimals(allow_nan=False, allow_infinity=False, places=2))
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                           max_leaves=10)
COLUMNS = ["a", "b", "c", "d", "raw"]
ROWS = st.lists(st.fixed_dictionaries({
    "a": SCALARS, "b": st.lists(TEXT | st.integers(), max_size=3) | st.none(), "c": SCALARS,
    "raw": st.dictionaries(TEXT, JSON_VALUES, max_size=4) | JSON_VALUES,
}), max_size=5)  # "d" is missing from every row: NULL


@settings(max_examples=400, deadline=None)
@given(ROWS)
def test_the_fast_serialiser_writes_what_the_reference_wrote(rows: list[dict[str, Any]]) -> None:
    """Field for field the same text, but for an object payload (orjson writes it): the same JSON value."""
    fast, reference = copy_text(rows, COLUMNS).split("\n"), _reference_copy_text(rows, COLUMNS).split("\n")
    assert len(fast) == len(reference)
    for row, fast_line, reference_line in zip(rows, fast, reference):
        fast_fields, reference_fields = fast_line.split("\t"), reference_line.split("\t")
        assert fast_fields[:-1] == reference_fields[:-1]
        if isinstance(row["raw"], dict):
            assert _decoded(fast_fields[-1]) == _decoded(reference_fields[-1])
        else:
            assert fast_fields[-1] == reference_fields[-1]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(TEXT, JSON_VALUES, max_size=4))
def test_an_object_payload_from_orjson_is_the_same_jsonb_value_and_safe(value: dict[str, Any]) -> None:
    text = payload_jsonb_text(value)
    text.encode("utf-8")
    assert json.loads(text, parse_constant=_refuse) == json.loads(_reference_jsonb_text(value))
    assert not any("\x00" in s for s in _strings(json.loads(text)))


def _decoded(field: str) -> Any:
    """The JSON value of a COPY text field."""
    unescaped = re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), field)
    return json.loads(unescaped)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES | st.dictionaries(TEXT, JSON_VALUES, max_size=4))
def test_jsonb_text_is_unchanged_and_safe_for_jsonb(value: Any) -> None:
    text = jsonb_text(value)
    assert text == _reference_jsonb_text(value)
    text.encode("utf-8")  # no lone surrogate left
    decoded = json.loads(text, parse_constant=_refuse)  # valid JSON, without NaN or Infinity
    assert not any("\x00" in s for s in _strings(decoded))  # nor NUL


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(s for v in value.values() for s in _strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _refuse(constant: str) -> None:
    raise AssertionError(f"jsonb refuses {constant}")


def test_escapes_and_nulls_in_one_row() -> None:
    row = {"a": "tab\there", "b": ["x\\y", 'q"'], "c": None, "raw": {"t": "a\tb", "n": float("nan"), "z": "\x00"}}
    assert copy_text([row], COLUMNS) == (
        'tab\\there\t{"x\\\\\\\\y","q\\\\""}\t\\N\t\\N\t{"t":"a\\\\tb","n":"nan","z":"\ufffd"}\n')


# A text column never holds a lone surrogate (the checks refuse one: "not valid Unicode"); raw payloads may.
VALID_TEXT = TEXT.filter(lambda text: not any(0xD800 <= ord(c) <= 0xDFFF for c in text))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries({"a": VALID_TEXT, "c": st.integers(), "raw": JSON_VALUES}), max_size=130),
       st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=8), st.booleans())
def test_the_copy_stream_reads_as_the_whole_text(rows: list[dict[str, Any]], sizes: list[int],
                                                 stop_early: bool) -> None:
    """Read in any sizes, the stream gives the batch's COPY text; ``whole()`` (the second COPY of a
    batch that repeated a key) gives all of it, however much was read before."""
    expected = copy_text(rows, COLUMNS).encode("utf-8")
    stream = CopyStream(rows, COLUMNS)
    read = b""
    for size in sizes if stop_early else [*sizes, *[max(sizes)] * (len(expected) // max(sizes) + 2)]:
        read += stream.read(size)
    assert expected.startswith(read) and (stop_early or read == expected)
    assert stream.whole() == expected
    assert stream.read(10) == b""


def test_the_generated_serialiser_escapes_any_text_column_lineage_included() -> None:
    """The generated serialiser checks a row's text fields for escapes in one search over them joined:
    each text column, the lineage's too (a run id is any text), holding each character COPY escapes."""
    from ingest_workers.datasets import PRODUCTS
    from ingest_workers.load.copygen import copy_serialiser

    clean = {"product_id": "p1", "name": "n", "price": Decimal("1.50"), "currency": "EUR", "category": ["a"],
             "in_stock": True, "updated_at": "2026-01-01T00:00:00+00:00", "source": "s", "run_id": "r",
             "job_id": "j", "fetched_at": "2026-01-01T00:00:00+00:00", "raw": {"k": 1}}
    serialise, columns = copy_serialiser(PRODUCTS), PRODUCTS.load_columns
    texts = [name for name, value in clean.items() if isinstance(value, str)]
    rows = [clean, {**clean, "name": None}]
    rows += [{**clean, name: f"x{char}y"} for name in texts for char in "\\\t\n\r"]
    for row in rows:
        assert serialise([row]) == copy_text([row], columns), row
    assert serialise(rows) == copy_text(rows, columns)
