"""Did-you-mean hints for names a user misspelt (catalog keys, types, source and column names)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'page_size'?"`` for the nearest of ``known``, or ``""`` when none is near.

    Appended to an error that names ``word``: ``f"unknown key {word!r}{did_you_mean(word, keys)}"``.
    """
    nearest = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {nearest[0]!r}?" if nearest else ""
