"""The GitHub-like records: issues with nested labels and scalar tags, and comments per issue.

Pure functions of (issue number, revision), so a test computes what it expects from the
fixture's data, never from the loader. Revision 1 is the first state; revision 2 changes some
issues and comments; every later revision serves what revision 2 served.

    issue numbers     1..size
    labels            2 to 4 per issue from a palette of 10 (ids 1001..1010); every 7th issue has none
    tags              0 to 2 scalar strings per issue
    comments          0 to 8 per issue, every 10th issue (n % 10 == 3) 45 to 74 (several pages);
                      comment ids are ``number * 1000 + k``
    404 comments      issues whose number is a multiple of 11 (``comments_missing``)

Revision 2 (``labels_changed``: n % 5 == 0 with labels): the first label removed, the last one
recoloured, one label added, the tag ``"triaged"`` appended and ``updated_at`` later.
Revision 2 (``comments_changed``: n % 3 == 0, comments not missing): the first comment's body
and ``updated_at`` change (when there is one) and two comments are added.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .revisions import settled

EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
OWNER, REPO = "acme", "widgets"
LABEL_NAMES = ("bug", "enhancement", "docs", "question", "ui", "backend", "security", "performance",
               "good first issue", "wontfix")
LABEL_COLOURS = ("d73a4a", "a2eeef", "0075ca", "d876e3", "fbca04", "0e8a16", "b60205", "5319e7",
                 "7057ff", "ffffff")
RECOLOURED = "000000"
TAG_WORDS = ("p1", "p2", "customer", "regression", "ux")
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace")


def _at(minutes: int) -> str:
    return (EPOCH + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def label(index: int, colour: str | None = None) -> dict[str, Any]:
    """Palette label ``index`` (0..9) as embedded in an issue: ``{id, name, color}``."""
    return {"id": 1001 + index, "name": LABEL_NAMES[index], "color": colour or LABEL_COLOURS[index]}


def label_count(number: int) -> int:
    """How many labels issue ``number`` has in revision 1 (0, or 2 to 4)."""
    return 0 if number % 7 == 0 else 2 + number % 3


def labels_changed(number: int) -> bool:
    """Whether revision 2 changes issue ``number`` (its labels, tags and updated_at)."""
    return number % 5 == 0 and label_count(number) > 0


def labels_of(number: int, revision: int = 1) -> list[dict[str, Any]]:
    """Issue ``number``'s labels in ``revision``: distinct palette entries (3 apart, so adding
    one more never repeats one)."""
    count = label_count(number)
    indexes = [(number + 3 * k) % 10 for k in range(count)]
    labels = [label(i) for i in indexes]
    if settled(revision) == 2 and labels_changed(number):
        last = indexes[-1]
        labels = labels[1:-1] + [label(last, RECOLOURED), label((number + 3 * count) % 10)]
    return labels


def tags_of(number: int, revision: int = 1) -> list[str]:
    """Issue ``number``'s scalar tags in ``revision``."""
    tags = [TAG_WORDS[(number + k) % len(TAG_WORDS)] for k in range(number % 3)]
    if settled(revision) == 2 and labels_changed(number):
        tags.append("triaged")
    return tags


def issue(number: int, revision: int = 1) -> dict[str, Any]:
    """Issue ``number`` (1-based) as ``GET /repos/acme/widgets/issues`` lists it in ``revision``."""
    changed = settled(revision) == 2 and labels_changed(number)
    return {
        "number": number,
        "title": f"Widget issue {number}",
        "state": "closed" if number % 4 == 0 else "open",
        "user": {"login": USERS[number % len(USERS)]},
        "labels": labels_of(number, revision),
        "tags": tags_of(number, revision),
        "updated_at": _at(number + (10_000 if changed else 0)),
    }


def issues(size: int, revision: int = 1) -> list[dict[str, Any]]:
    """Every issue of a fixture with ``size`` issues, in the order the list endpoint serves them."""
    return [issue(number, revision) for number in range(1, size + 1)]


def comments_missing(number: int) -> bool:
    """Whether ``/issues/{number}/comments`` answers 404 (every revision)."""
    return number % 11 == 0


def comment_count(number: int) -> int:
    """How many comments issue ``number`` has in revision 1 (0 for a missing one)."""
    if comments_missing(number):
        return 0
    return 45 + number % 30 if number % 10 == 3 else (number * 7) % 9


def comments_changed(number: int) -> bool:
    """Whether revision 2 changes issue ``number``'s comments (one edited if any, two added)."""
    return number % 3 == 0 and not comments_missing(number)


def comment(number: int, k: int, revision: int = 1) -> dict[str, Any]:
    """Comment ``k`` (0-based) of issue ``number`` in ``revision``."""
    edited = settled(revision) == 2 and comments_changed(number) and k == 0
    return {
        "id": number * 1000 + k,
        "body": f"Comment {k} on issue {number}" + (" (edited)" if edited else ""),
        "user": {"login": USERS[(number + k) % len(USERS)]},
        "created_at": _at(number + k),
        "updated_at": _at(number + k + (20_000 if edited else 0)),
    }


def comments_of(number: int, revision: int = 1) -> list[dict[str, Any]]:
    """Every comment of issue ``number`` in ``revision``, in the order served; ``[]`` for an issue
    whose comments answer 404 (``comments_missing``), so summing over all issues gives the rows
    a loader that skips 404s should hold."""
    count = comment_count(number)
    if settled(revision) == 2 and comments_changed(number):
        count += 2
    return [comment(number, k, revision) for k in range(count)]
