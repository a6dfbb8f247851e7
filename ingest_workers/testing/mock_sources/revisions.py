"""Record revisions: with ``--revision N`` (N > 0) every ``changed_every``-th valid record changes
its price, its stock or its text to a value that depends on N, and every record carries
``"revision"``: N for a record that changed, 0 for one that did not. Revision 0 is the feed as
it always was (no ``revision`` field), so the catalog's sources and their counts stay the same.

A record's time and key never change, so the time filters of incremental sources find the
same records; a source that should see changes reads the whole feed (no cursor).
"""

from __future__ import annotations

from typing import Any

from .feed import is_invalid


def is_changed(index: int, revision: int, changed_every: int, invalid_every: int) -> bool:
    """Does record ``index`` differ in ``revision`` from revision 0? (Broken records never change:
    whether a record is refused stays what the feed's ``refused`` predicate says.)"""
    return (revision > 0 and changed_every > 0 and index % changed_every == 0
            and not is_invalid(index, invalid_every))


def revise(record: dict[str, Any], index: int, revision: int, changed_every: int,
           invalid_every: int) -> dict[str, Any]:
    """``record`` as revision ``revision`` serves it (the same dict, changed in place)."""
    if revision <= 0:
        return record
    changed = is_changed(index, revision, changed_every, invalid_every)
    record["revision"] = revision if changed else 0
    if changed:
        _change(record, revision)
    return record


def _change(record: dict[str, Any], revision: int) -> None:
    price = record.get("price")
    if isinstance(price, (int, float)) and not isinstance(price, bool):  # shop A, quotes
        record["price"] = round(price + revision * 1.25, 2)
    elif isinstance(price, dict) and isinstance(price.get("amount"), (int, float)):  # shop B
        price["amount"] = round(price["amount"] + revision * 1.25, 2)
        if isinstance(record.get("stock"), dict):
            record["stock"]["available"] = revision % 2 == 1
    elif isinstance(record.get("in_stock"), bool):
        record["in_stock"] = revision % 2 == 1
    holder = record["message"] if isinstance(record.get("message"), dict) else record  # telegram nests it
    for text_field in ("productName", "title", "text"):  # shop C, posts, mentions
        if isinstance(holder.get(text_field), str) and holder[text_field]:
            holder[text_field] = f"{holder[text_field]} (revision {revision})"
            break
