"""The mock source's record revisions (``--revision N``): what changes, and what never does."""

from ingest_workers.testing.mock_sources import FEEDS
from ingest_workers.testing.mock_sources.revisions import revise


def test_revision_zero_is_the_feed_as_it_always_was() -> None:
    for feed in FEEDS.values():
        for index in range(300):
            assert revise(feed.record(index, 97), index, 0, 10, 97) == feed.record(index, 97)


def test_every_tenth_valid_record_changes_and_keys_times_and_broken_records_never_do() -> None:
    for path, feed in FEEDS.items():
        changed = []
        for index in range(500):
            before, after = feed.record(index, 97), revise(feed.record(index, 97), index, 2, 10, 97)
            assert after.pop("revision") in (0, 2)
            if after != before:
                changed.append(index)
                different = {k for k in before if before[k] != after[k]}
                assert different and not different & {"id", "sku", "productId", "updated_at", "updatedAt",
                                                       "modified", "ts", "time", "created_at", "date"}, path
        valid_tenths = [i for i in range(0, 500, 10) if i % 97 != 96]
        assert changed == valid_tenths, path
        third = [revise(feed.record(i, 97), i, 3, 10, 97) for i in changed]
        assert third != [revise(feed.record(i, 97), i, 2, 10, 97) for i in changed]  # N decides the values
