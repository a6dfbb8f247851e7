"""Posts shaped like jsonplaceholder's ``/posts`` (``userId``, ``id``, ``title``, ``body``)."""

from __future__ import annotations

from typing import Any

from .base import Domain
from .checks import optional_text, required_integer, required_text


def check_post(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "post_id": required_integer(record, "post_id", minimum=1),
        "user_id": required_integer(record, "user_id", minimum=0),
        "title": required_text(record, "title", 1000),
        "body": optional_text(record, "body", 100_000),
    }


POSTS = Domain(
    name="posts",
    table="posts",
    key=("source", "post_id"),
    fields=("post_id", "user_id", "title", "body"),
    check=check_post,
)
