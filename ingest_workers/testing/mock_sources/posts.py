"""Posts shaped like jsonplaceholder's ``/posts``: a top-level list of
``{userId, id, title, body}``, pages by ``_page``/``_limit``, ``id_gte`` to start at an id."""

from __future__ import annotations

import random
from typing import Any

from .feed import Feed, is_invalid

_WORDS = ("sunt", "aut", "facere", "repellat", "provident", "occaecati", "excepturi", "optio", "reprehenderit",
          "qui", "est", "esse", "dolorem", "eum", "magnam")


def post(index: int, invalid_every: int = 97) -> dict[str, Any]:
    rnd = random.Random(index + 6_000_000)
    record: dict[str, Any] = {
        "userId": 1 + index % 10,
        "id": index + 1,
        "title": " ".join(rnd.choice(_WORDS) for _ in range(5)),
        "body": "\n".join(" ".join(rnd.choice(_WORDS) for _ in range(8)) for _ in range(3)),
    }
    if is_invalid(index, invalid_every):
        if (index // invalid_every) % 2:
            record["title"] = ""
        else:
            record["userId"] = "admin"
    return record


class PostsFeed(Feed):
    def first_index(self, since: str) -> int:
        """``id_gte``: ids start at 1."""
        return max(0, int(since) - 1)


POSTS = PostsFeed(post, is_invalid)
