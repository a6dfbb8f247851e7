"""The shop-like records: a product list of ids and names, and one detail object per id.

Pure functions of (product id, revision), as in ``github.py``; revision 3 and later serve what
revision 2 served.

    product ids       1..size
    404 details       ids that are multiples of 13 (``detail_missing``): listed, but gone
    reviews           0 to 4 per product (ids ``product_id * 100 + k``), nested in the detail
    tags              1 to 2 scalar strings per product

Revision 2 (``reviews_changed``: id % 4 == 0 with at least two reviews): the first review
removed, the last one's rating and comment changed, one review added (id ``* 100 + 50``).
"""

from __future__ import annotations

from typing import Any

from .revisions import settled

NAMES = ("Kettle", "Lamp", "Backpack", "Monitor", "Tent", "Blender", "Keyboard")
TAGS = ("new", "sale", "eco", "gift", "bulk")


def product_summary(product_id: int) -> dict[str, Any]:
    """Product ``product_id`` as ``GET /products`` lists it: ``{id, name}`` (every revision)."""
    return {"id": product_id, "name": f"{NAMES[product_id % len(NAMES)]} {product_id}"}


def products(size: int) -> list[dict[str, Any]]:
    """The whole list of a fixture with ``size`` products, in the order served."""
    return [product_summary(i) for i in range(1, size + 1)]


def detail_missing(product_id: int) -> bool:
    """Whether ``GET /products/{id}`` answers 404 for a listed product."""
    return product_id % 13 == 0


def review_count(product_id: int) -> int:
    """How many reviews product ``product_id`` has in revision 1."""
    return product_id % 5


def reviews_changed(product_id: int) -> bool:
    """Whether revision 2 changes product ``product_id``'s reviews."""
    return product_id % 4 == 0 and review_count(product_id) >= 2 and not detail_missing(product_id)


def review(product_id: int, k: int, rating: int | None = None, note: str = "") -> dict[str, Any]:
    """Review ``k`` of a product: ``{id, rating, comment}``."""
    return {"id": product_id * 100 + k, "rating": rating or 1 + (product_id + k) % 5,
            "comment": f"Review {k} of product {product_id}{note}"}


def reviews_of(product_id: int, revision: int = 1) -> list[dict[str, Any]]:
    """Product ``product_id``'s reviews in ``revision``, in the order served."""
    count = review_count(product_id)
    reviews = [review(product_id, k) for k in range(count)]
    if settled(revision) == 2 and reviews_changed(product_id):
        last = reviews[-1]
        revised = review(product_id, count - 1, rating=1 + last["rating"] % 5, note=" (revised)")
        reviews = reviews[1:-1] + [revised, review(product_id, 50, note=" (new)")]
    return reviews


def product_detail(product_id: int, revision: int = 1) -> dict[str, Any] | None:
    """``GET /products/{id}``'s one object in ``revision``: ``{id, name, price, reviews, tags}``;
    None where the endpoint answers 404 (``detail_missing``)."""
    if detail_missing(product_id):
        return None
    return {
        **product_summary(product_id),
        "price": round(5 + (product_id * 37) % 500 + 0.99, 2),
        "reviews": reviews_of(product_id, revision),
        "tags": [TAGS[(product_id + k) % len(TAGS)] for k in range(1 + product_id % 2)],
    }
