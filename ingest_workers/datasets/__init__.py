"""The tables records land in: declared datasets (``[datasets.NAME]``: typed columns with
constraints, a natural key, append or merge) and the pure check each declaration makes, which
turns a mapped record into a row or refuses it with a reason naming the column and the rule.

- :mod:`.types`: the column types (text, integer, numeric, money, boolean, timestamp, date, json, text[]).
- :mod:`.declared`: a dataset's declaration, read from TOML, and its row check.
- ``builtin.toml``: the five datasets shipped with the package (products, quotes, mentions, posts, sensors).
- :mod:`.base`: :class:`Domain`, what the stages, the loader and the sinks work with.

``ingest db migrate`` creates and evolves each declared table (:mod:`ingest_workers.load.schema`).

Pure: no I/O. May import: ``core``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ..core.errors import ConfigError
from .base import LINEAGE_COLUMNS, Domain
from .checks import MAX_TEXT, parse_price
from .declared import Column, Dataset, parse_dataset


def _builtin() -> dict[str, Dataset]:
    text = (resources.files("ingest_workers.datasets") / "builtin.toml").read_text(encoding="utf-8")
    return {name: parse_dataset(name, entry, "builtin.toml: ")
            for name, entry in tomllib.loads(text)["datasets"].items()}


BUILTIN: dict[str, Dataset] = _builtin()
DOMAINS: dict[str, Domain] = {name: dataset.domain for name, dataset in BUILTIN.items()}
PRODUCTS, QUOTES, MENTIONS, POSTS, SENSORS = (DOMAINS[n] for n in
                                             ("products", "quotes", "mentions", "posts", "sensors"))


def domain_of(name: str, declaration: Mapping[str, Any] | None = None) -> Domain:
    """The domain of a source: its catalog's declaration when the job carries one, else a built-in."""
    if declaration is not None:
        return parse_dataset(name, declaration).domain
    if name not in DOMAINS:
        raise ConfigError(f"unknown dataset {name!r}: not built in ({', '.join(DOMAINS)}) and not declared "
                          "in the job's catalog")
    return DOMAINS[name]


__all__ = ["BUILTIN", "DOMAINS", "LINEAGE_COLUMNS", "MAX_TEXT", "MENTIONS", "POSTS", "PRODUCTS", "QUOTES",
           "SENSORS", "Column", "Dataset", "Domain", "domain_of", "parse_dataset", "parse_price"]
