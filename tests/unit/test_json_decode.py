"""orjson first, Python's json for the rest: every body decodes to what ``json`` made of it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_workers.sources.json_decode import decode_json

VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                      max_leaves=20)


def _old(body: bytes) -> Any:
    return json.loads(body.decode("utf-8", errors="replace"))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(VALUES, st.booleans())
def test_any_json_body_decodes_as_before(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert _same(decode_json(body), _old(body))


@pytest.mark.parametrize("body", [b'{"p": NaN, "q": -Infinity}', b'[123456789012345678901234567890]',
                                  b'{"name": "caf\xe9"}', b'["\\ud800"]', b'{"a": 1, "a": 2}'])
def test_what_orjson_refuses_takes_the_old_path(body: bytes) -> None:
    assert _same(decode_json(body), _old(body))


@pytest.mark.parametrize("body", [b"<html>", b"", b'{"a": '])
def test_not_json_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_json(body)
