"""``too_deep`` (iterative, run for every record fetched) answers what the recursive definition of a
value's depth answers, for any JSON value and any limit."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingest_workers.sources.jsonlimits import too_deep

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner, max_size=4),
                    max_leaves=40)


def _depth(value: Any) -> int:
    """Levels of lists and objects (a scalar: 0), recursively: the definition."""
    if type(value) is dict:
        return 1 + max(map(_depth, value.values()), default=0)
    if type(value) is list:
        return 1 + max(map(_depth, value), default=0)
    return 0


@given(JSON, st.integers(min_value=0, max_value=6))
def test_too_deep_is_deeper_than_the_limit(value: Any, limit: int) -> None:
    assert too_deep(value, limit) == (_depth(value) > limit)


def test_a_chain_far_deeper_than_recursion_allows() -> None:
    value: Any = 1
    for level in range(5_000):
        value = [value] if level % 2 else {"k": value}
    assert too_deep(value, 4_999) and not too_deep(value, 5_000)
