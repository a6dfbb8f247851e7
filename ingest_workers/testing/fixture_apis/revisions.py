"""The fixture's revisions: 1 is the first state, 2 changes some records, later ones change nothing."""

from __future__ import annotations

LAST_CHANGE = 2  # revisions after this one serve what it served (a run that must change nothing)


def settled(revision: int) -> int:
    """The revision whose data ``revision`` serves: 3 and later serve exactly what 2 served."""
    if revision < 1:
        raise ValueError(f"revisions start at 1, got {revision}")
    return min(revision, LAST_CHANGE)
