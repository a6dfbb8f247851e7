"""Mentions of tickers from two platforms with different shapes.

- Twitter-like (``/twitter/tweets``): ``{"data": [{id, text, created_at, author_id,
  entities: {cashtags: [{tag}]}}], "meta": {"next_token"}}``, cursor tokens.
- Telegram-like (``/telegram/getUpdates``): ``{"ok": true, "result": [{update_id,
  message: {message_id, date (Unix seconds), from: {username}, text}}]}``, offset/limit;
  the ticker is the first ``$CASHTAG`` of the text.
"""

from __future__ import annotations

import random
from typing import Any

from .feed import Feed, is_invalid, iso

_TICKERS = ("AAPL", "TSLA", "GME", "NVDA", "AMC", "MSFT", "PLTR", "AMD")
_TEMPLATES = (
    "${t} to the moon 🚀 buy now before it's too late!",
    "${t} beat earnings, strong quarter and record growth",
    "${t} looks weak, expecting a crash. Selling.",
    "Watching ${t} today, no position.",
    "${t} 100x next gem, don't miss it 🚀🚀",
    "Downgrade on ${t}, bearish into the close",
    "${t} rally continues, bullish breakout",
    "Anyone holding ${t}? What's the plan",
)
SECONDS = 30


def _text(rnd: random.Random) -> tuple[str, str]:
    ticker = rnd.choice(_TICKERS)
    return ticker, rnd.choice(_TEMPLATES).replace("{t}", ticker)


def tweet(index: int, invalid_every: int = 97) -> dict[str, Any]:
    rnd = random.Random(index + 4_000_000)
    ticker, text = _text(rnd)
    record: dict[str, Any] = {
        "id": str(1_790_000_000_000_000_000 + index),
        "text": text,
        "created_at": iso(TWITTER.time_of(index)),
        "author_id": str(10_000 + rnd.randint(0, 500)),
        "entities": {"cashtags": [{"start": text.index("$"), "tag": ticker}]},
    }
    if is_invalid(index, invalid_every):
        if (index // invalid_every) % 2:
            record["text"] = None
        else:
            record["created_at"] = "yesterday"
    return record


def telegram_update(index: int, invalid_every: int = 97) -> dict[str, Any]:
    rnd = random.Random(index + 5_000_000)
    _, text = _text(rnd)
    if is_invalid(index, invalid_every):
        text = "gm everyone, coffee first"  # no $CASHTAG: no ticker to file it under
    moment = TELEGRAM.time_of(index)
    return {"update_id": 900_000 + index,
            "message": {"message_id": index + 1, "date": int(moment.timestamp()),
                        "chat": {"id": -100_123, "title": "Stocks chat"},
                        "from": {"username": f"trader{rnd.randint(1, 300)}"}, "text": text}}


TWITTER = Feed(tweet, is_invalid, seconds_per_step=SECONDS)
TELEGRAM = Feed(telegram_update, is_invalid, seconds_per_step=SECONDS)
