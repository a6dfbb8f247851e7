"""Stages for text: sentiment and pump-signal detection. Pure and lazy.

Sentiment is a small word lexicon, not a model: it counts positive and negative
words (and a few emoji) and labels the text by the sign of the difference. Good
enough to sort mentions coarsely; it misses sarcasm and negation.

Ticker from a cashtag: a mention without a ticker field takes the first ``$TICKER`` of its text
(a ``prepare`` stage of the mentions dataset: it runs before the column checks).

Pump signal: a mention is flagged when its text carries at least ``min_markers``
different pump markers (phrases such as "to the moon", "100x", "buy now", "🚀").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ..core.errors import ConfigError
from ..core.models import Record
from .base import Item

POSITIVE = frozenset("""bullish buy buying beat beats breakout gain gains green growth long moon mooning outperform
profit profits rally record soar soaring strong surge up upgrade win winning great love""".split())
NEGATIVE = frozenset("""bearish sell selling miss misses crash crashing dump dumping down downgrade drop fall falls
fraud loss losses red scam short weak lawsuit bankrupt bad hate""".split())
POSITIVE_EMOJI = ("🚀", "📈", "💎")
NEGATIVE_EMOJI = ("📉", "💀")
PUMP_MARKERS = ("to the moon", "100x", "10x", "1000x", "buy now", "don't miss", "dont miss", "next gem",
                "guaranteed", "last chance", "🚀", "all in", "going parabolic")
_WORD = re.compile(r"[a-z']+")
_CASHTAG = re.compile(r"\$([A-Za-z][A-Za-z0-9.]{0,9})\b")


def sentiment_score(text: str) -> int:
    lowered = text.lower()
    words = _WORD.findall(lowered)
    score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    return score + sum(lowered.count(e) for e in POSITIVE_EMOJI) - sum(lowered.count(e) for e in NEGATIVE_EMOJI)


def pump_markers(text: str) -> int:
    lowered = text.lower()
    return sum(marker in lowered for marker in PUMP_MARKERS)


def _text_of(record: Record, field: str) -> str:
    value = record.row.get(field)
    return value if isinstance(value, str) else ""


class Sentiment:
    """Label ``field`` positive, negative or neutral (lexicon) into ``output``; the score into ``score_output``."""

    name = "sentiment"

    def __init__(self, field: str = "text", output: str = "sentiment", score_output: str = "sentiment_score") -> None:
        self.field, self.output, self.score_output = field, output, score_output

    def process(self, items: Iterable[Item]) -> Iterator[Item]:
        for item in items:
            if isinstance(item, Record):
                score = sentiment_score(_text_of(item, self.field))
                item.row[self.score_output] = score
                item.row[self.output] = "positive" if score > 0 else "negative" if score < 0 else "neutral"
            yield item


class PumpSignal:
    """Flag ``output`` true when ``field`` holds at least ``min_markers`` distinct pump markers."""

    name = "pump_signal"

    def __init__(self, field: str = "text", output: str = "pump_signal", min_markers: int = 2) -> None:
        if isinstance(min_markers, bool) or not isinstance(min_markers, int) or min_markers < 1:
            raise ConfigError(f"stage {self.name}: min_markers must be a whole number of at least 1")
        self.field, self.output, self.min_markers = field, output, min_markers

    def process(self, items: Iterable[Item]) -> Iterator[Item]:
        for item in items:
            if isinstance(item, Record):
                item.row[self.output] = pump_markers(_text_of(item, self.field)) >= self.min_markers
            yield item


class TickerFromCashtag:
    """Fill ``field`` (default ``ticker``) of a mapped record that has none from the first
    ``$CASHTAG`` in ``text_field``; the dataset's checks then refuse a record that still has none."""

    name = "ticker_from_cashtag"

    def __init__(self, field: str = "ticker", text_field: str = "text") -> None:
        self.field, self.text_field = field, text_field

    def process(self, items: Iterable[Item]) -> Iterator[Item]:
        for item in items:
            if isinstance(item, Record) and item.row.get(self.field) in (None, ""):
                text = item.row.get(self.text_field)
                found = _CASHTAG.search(text) if isinstance(text, str) else None
                if found is not None:
                    item.row[self.field] = found.group(1)
            yield item
