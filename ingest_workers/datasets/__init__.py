"""The tables records land in: declared datasets (``[datasets.NAME]``: typed columns with
constraints, a natural key, append or merge) and the pure check each declaration makes, which
turns a mapped record into a row or refuses it with a reason naming the column and the rule.

- :mod:`.model`: :class:`Dataset` and :class:`Column`, the frozen declaration the stages, the
  loader and the sinks work with.
- :mod:`.rowcheck`: the row check a dataset builds from its columns.
- :mod:`.parsing`: :func:`parse_dataset`, a declaration read from TOML or from a job.
- :mod:`.nesting`: nested datasets (rows from a list inside each record of another dataset).
- :mod:`.drift`: the fields of the records no column reads; :mod:`.catalog_diff`: a page against a declaration.
- :mod:`.types`: the column types (text, integer, numeric, money, boolean, timestamp, date, json, text[]).
- :mod:`.checks`: the text and price checks the types share.
- ``builtin.toml``: the five datasets shipped with the package (products, quotes, mentions, posts, sensors).

``ingest db migrate`` creates and evolves each declared table (:mod:`ingest_workers.load.schema`).

Pure: no I/O but reading ``builtin.toml``. May import: ``core``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ..core.errors import ConfigError
from ..core.suggest import did_you_mean
from .checks import MAX_TEXT, parse_price
from .model import LINEAGE_COLUMNS, Column, Dataset
from .nesting import resolve_nested
from .parsing import parse_dataset


def _builtin() -> dict[str, Dataset]:
    text = (resources.files("ingest_workers.datasets") / "builtin.toml").read_text(encoding="utf-8")
    return {name: parse_dataset(name, entry, "builtin.toml: ")
            for name, entry in tomllib.loads(text)["datasets"].items()}


BUILTIN: dict[str, Dataset] = _builtin()
PRODUCTS, QUOTES, MENTIONS, POSTS, SENSORS = (BUILTIN[n] for n in
                                             ("products", "quotes", "mentions", "posts", "sensors"))


def dataset_of(name: str, declaration: Mapping[str, Any] | None = None) -> Dataset:
    """A job's dataset: the declaration it carries (its catalog's ``[datasets.NAME]``), else the
    built-in one called ``name``. Parses the declaration: call once per job and pass the result on."""
    if declaration is not None:
        return parse_dataset(name, declaration)
    if name not in BUILTIN:
        raise ConfigError(f"unknown dataset {name!r}{did_you_mean(name, BUILTIN)}: not built in "
                          f"({', '.join(BUILTIN)}) and not declared in the job's catalog")
    return BUILTIN[name]


__all__ = ["BUILTIN", "LINEAGE_COLUMNS", "MAX_TEXT", "MENTIONS", "POSTS", "PRODUCTS", "QUOTES", "SENSORS", "Column",
           "Dataset", "dataset_of", "parse_dataset", "parse_price",
           "resolve_nested"]
