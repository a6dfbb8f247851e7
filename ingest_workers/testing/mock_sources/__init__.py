"""A local source server for the demo, the tests and the benchmarks (this machine has
no internet): the five datasets of the design notes, served deterministically.

``server`` holds the routing and paging; each dataset module computes its records
from their index. :data:`FEEDS` names every feed, for tests that need to know how
many records a feed serves and how many the catalog's stages will refuse.
"""

from __future__ import annotations

from . import mentions, posts, products, quotes, sensors
from .feed import Feed, is_invalid
from .products import product
from .server import ROUTES, MockConfig, MockServer

FEEDS: dict[str, Feed] = {path: endpoint.feed for path, endpoint in ROUTES.items()}


def count_invalid(records: int, invalid_every: int) -> int:
    """How many of shop A's first ``records`` products are broken."""
    return records // invalid_every if invalid_every > 0 else 0


def count_refused_csv(records: int, invalid_every: int) -> int:
    """How many rows of ``/sensors.csv`` the catalog's validate and threshold stages refuse."""
    return sum(sensors.refused(i, invalid_every) for i in range(records))


__all__ = ["FEEDS", "ROUTES", "Feed", "MockConfig", "MockServer", "count_invalid", "count_refused_csv", "is_invalid",
           "mentions", "posts", "product", "products", "quotes", "sensors"]
