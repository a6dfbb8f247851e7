"""Stock quotes for 24 tickers, one quote per ticker and minute. ``DLST`` is delisted:
it always quotes a price of 0, so all its quotes are refused while the others load."""

from __future__ import annotations

import random
from typing import Any

from .feed import Feed, is_invalid, iso

TICKERS = ("AAPL", "MSFT", "GOOG", "AMZN", "META", "NVDA", "TSLA", "JPM", "V", "JNJ", "WMT", "PG", "XOM", "KO",
           "PEP", "DIS", "NFLX", "INTC", "AMD", "ORCL", "IBM", "GME", "BRK.B", "DLST")
FAILING_TICKER = "DLST"
_BREAKAGES = (("volume", -100), ("price", -1.5), ("price", None), ("volume", "lots"))
FEED_SECONDS = 60


def quote(index: int, invalid_every: int = 97) -> dict[str, Any]:
    ticker = TICKERS[index % len(TICKERS)]
    rnd = random.Random(index + 3_000_000)
    base = 20 + (index % len(TICKERS)) * 17.5
    record: dict[str, Any] = {
        "symbol": ticker,
        "time": iso(QUOTES.time_of(index)),
        "price": 0.0 if ticker == FAILING_TICKER else round(base * (1 + rnd.uniform(-0.02, 0.02)), 4),
        "volume": rnd.randint(0, 50_000),
        "exchange": "NYSE" if index % 2 else "NASDAQ",
    }
    if is_invalid(index, invalid_every):
        field, value = _BREAKAGES[(index // invalid_every) % len(_BREAKAGES)]
        record[field] = value
    return record


def refused(index: int, invalid_every: int) -> bool:
    return TICKERS[index % len(TICKERS)] == FAILING_TICKER or is_invalid(index, invalid_every)


QUOTES = Feed(quote, refused, seconds_per_step=FEED_SECONDS, per_step=len(TICKERS))
