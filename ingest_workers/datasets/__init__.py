"""The tables records land in: their columns, natural key, and the pure check that
turns a mapped record into a row (or refuses it with a reason). One module per domain.

A domain's table is created by a migration in ``load/migrations/``; the loader writes
``Domain.columns`` in order, and ``Domain.key`` is the table's unique key.

Pure: no I/O. May import: ``core``.
"""

from __future__ import annotations

from .base import LINEAGE_COLUMNS, Domain
from .checks import MAX_TEXT, optional_text, optional_timestamp, parse_price, required_text
from .mentions import MENTIONS
from .posts import POSTS
from .products import PRODUCTS, check_product
from .quotes import QUOTES
from .sensors import SENSORS

DOMAINS: dict[str, Domain] = {d.name: d for d in (PRODUCTS, QUOTES, MENTIONS, POSTS, SENSORS)}

__all__ = ["DOMAINS", "LINEAGE_COLUMNS", "MAX_TEXT", "MENTIONS", "POSTS", "PRODUCTS", "QUOTES", "SENSORS", "Domain",
           "check_product", "optional_text", "optional_timestamp", "parse_price", "required_text"]
