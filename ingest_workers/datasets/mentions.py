"""Social mentions of tickers, from feeds shaped like Twitter's and Telegram's.

``sentiment`` and ``pump_signal`` are filled by the stages of the same names
(see :mod:`ingest_workers.stages.base`), which this domain runs by default.
"""

from __future__ import annotations

import re
from typing import Any

from ..core.models import Reject
from .base import Domain
from .checks import optional_text, required_text, required_timestamp
from .quotes import check_ticker

_CASHTAG = re.compile(r"\$([A-Za-z][A-Za-z0-9.]{0,9})\b")


def check_mention(record: dict[str, Any]) -> dict[str, Any]:
    text = required_text(record, "text", 10_000)
    ticker = optional_text(record, "ticker", 15)
    if ticker is None:  # feeds without a cashtag field: the first $TICKER in the text
        found = _CASHTAG.search(text)
        if found is None:
            raise Reject("ticker: no ticker field and no $CASHTAG in the text")
        ticker = found.group(1)
    return {
        "platform": required_text(record, "platform", 30),
        "mention_id": required_text(record, "mention_id", 100),
        "ticker": check_ticker(ticker),
        "ts": required_timestamp(record, "ts"),
        "author": optional_text(record, "author", 200),
        "text": text,
        "sentiment": None,
        "sentiment_score": None,
        "pump_signal": None,
    }


MENTIONS = Domain(
    name="mentions",
    table="social_mentions",
    key=("source", "mention_id"),
    fields=("platform", "mention_id", "ticker", "ts", "author", "text", "sentiment", "sentiment_score",
            "pump_signal"),
    check=check_mention,
    time_field="ts",
    default_stages=("sentiment", "pump_signal"),
    stats=("sentiment_score",),
)
