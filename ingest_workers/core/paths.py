"""Dotted paths into JSON as served (``user.login``, ``labels.0.name``): the one reading of them that
records paths, field mappings, paginators' tokens and request templates share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def value_at(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``data`` (``""``: ``data`` itself); ``None`` where the path
    leads nowhere."""
    return value_at_parts(data, path.split(".") if path else ())


def value_at_parts(data: Any, parts: Sequence[str]) -> Any:
    """:func:`value_at` with the path split once beforehand (per-record code). A numeric part
    indexes a list."""
    for part in parts:
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data
