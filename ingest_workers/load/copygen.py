"""A dataset's COPY serialiser, generated once from its declared column types: one expression per
column, no dispatch on the type of each value.

:func:`~.loader.copy_text` looks at every value's type (``_copy_field``: up to six checks for a
number). A dataset declares what each column holds, so the generated code tries that type first,
by identity (``v.__class__ is str``), and gives any other value to ``_copy_field``, which writes it as
:func:`~.loader.copy_text` would: the text is the same for any row, whatever a stage put in it
(``tests/unit/test_compiled_path.py`` holds the two to it). Names reach the code as values of its
namespace, never as code. Pure: no I/O.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson

from ..datasets import Dataset
from ..datasets.model import LINEAGE_COLUMNS
from ..datasets.types import JsonText
from . import loader

Serialiser = Callable[[Sequence[dict[str, Any]]], str]
_TEXT = "('\\\\N' if v{i} is None else v{i} if v{i}.__class__ is str and not S(v{i}) else F(v{i}))"
_BY_TYPE = {
    "text": _TEXT, "timestamp": _TEXT, "date": _TEXT,
    "integer": "(str(v{i}) if v{i}.__class__ is int else F(v{i}))",
    "numeric": "(str(v{i}) if (k := v{i}.__class__) is DECIMAL or k is int or k is float else F(v{i}))",
    "boolean": "('t' if v{i} is True else 'f' if v{i} is False else F(v{i}))",
    "json": "(v{i} if v{i}.__class__ is JSON and not S(v{i}) else F(v{i}))",
    "text[]": "(E(TEXTS(v{i})) if v{i}.__class__ is list else F(v{i}))",
}
_BY_TYPE["money"] = _BY_TYPE["numeric"]
_RAW = "(RAW(v{i}) if v{i}.__class__ is dict else F(v{i}))"
# When none of a row's text fields needs an escape (one search over them joined), each skips its own search
_CLEAN = {_TEXT: "(v{i} if v{i}.__class__ is str else F(v{i}))",
          _BY_TYPE["json"]: "(v{i} if v{i}.__class__ is JSON else F(v{i}))"}


def _raw_text(payload: dict[str, Any]) -> str:
    """``_copy_field(payload)`` for a dict: orjson's text, checked as :func:`~.loader.payload_jsonb_text`
    checks it; orjson escapes every control character, so only a backslash needs COPY's escape."""
    try:
        data = orjson.dumps(payload)
    except TypeError:
        return loader._copy_field(payload)
    if b"null" in data or b"\\u0000" in data:
        return loader._copy_field(payload)
    return data.decode().replace("\\", "\\\\") if b"\\" in data else data.decode()


def _texts_literal(items: list[Any]) -> str:
    """``_array_literal(items)``: joined at once when every item is text without a quote or a backslash."""
    if items and {*map(type, items)} == _ONLY_TEXT and '"' not in (joined := "".join(items)) \
            and "\\" not in joined:
        return '{"' + '","'.join(items) + '"}'
    return loader._array_literal(items)


_ONLY_TEXT = frozenset({str})


def copy_serialiser(dataset: Dataset) -> Serialiser:
    """rows -> their COPY text in ``dataset.load_columns`` order, equal to ``copy_text(rows, dataset.load_columns)``."""
    columns = dataset.load_columns
    types = {c.name: c.type for c in dataset.columns if not c.computed}
    types.update({name: "text" for name in LINEAGE_COLUMNS})
    exprs, clean, texts = [], [], []
    for i, name in enumerate(columns):
        template = _RAW if name == "raw" else _BY_TYPE.get(types.get(name, ""), "F(v{i})")
        exprs.append(template.format(i=i))
        clean.append(_CLEAN.get(template, template).format(i=i))
        texts += [f"v{i}"] if template in _CLEAN else []
    # All the columns in one C call; a row that lacks one (a stage's doing) or is no plain dict: copy_text
    source = ("def serialise(rows):\n"
              "    out = []\n"
              "    for row in rows:\n"
              "        if row.__class__ is not dict or len(row) < LEAST:\n"
              "            out.append(SLOW((row,), COLUMNS))\n"
              "            continue\n"
              "        try:\n"
              "            " + ", ".join(f"v{i}" for i in range(len(columns))) + ", = GET(row)\n"
              "        except KeyError:\n"
              "            out.append(SLOW((row,), COLUMNS))\n"
              "            continue\n"
              "        try:\n"
              "            dirty = S(JOIN((" + ", ".join([*texts, "''"]) + ")))\n"
              "        except TypeError:\n"  # a text column holding None or no text: each field on its own
              "            dirty = True\n"
              "        out.append(TAB((" + ", ".join(exprs) + ") if dirty else (" + ", ".join(clean) + ")) + '\\n')\n"
              "    return ''.join(out)\n")
    namespace: dict[str, Any] = {"GET": operator.itemgetter(*columns), "COLUMNS": columns, "LEAST": len(columns),
                                 "SLOW": loader.copy_text}
    namespace.update({"S": loader._NEEDS_ESCAPE.search, "F": loader._copy_field, "E": loader._escaped,
                      "TEXTS": _texts_literal, "RAW": _raw_text, "TAB": "\t".join, "JOIN": "".join, "DECIMAL": Decimal,
                      "JSON": JsonText})
    exec(compile(source, f"<COPY serialiser of dataset {dataset.name}>", "exec"), namespace)  # noqa: S102
    return namespace["serialise"]
