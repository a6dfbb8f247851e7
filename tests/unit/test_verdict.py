"""The per-key verdict shared by the chaos and hosts runs: each expected key ends loaded once,
rejected, lost or duplicated; strays and keys that ended against the fixture are counted."""

from __future__ import annotations

from collections import Counter

from ingest_workers.testing.hosts import HostsResult
from ingest_workers.testing.verdict import Expect, Outcome, Stored, judge, served_keys

EXPECTED = {("s", "a"): Expect.LOAD, ("s", "b"): Expect.REJECT, ("s", "c"): Expect.LOAD,
            ("s", "d"): Expect.LOAD, ("s", "e"): Expect.EITHER}


def test_each_key_gets_one_outcome() -> None:
    stored = Stored(rows=Counter({("s", "a"): 1, ("s", "d"): 2, ("s", "e"): 1, ("t", "x"): 1}),
                    rejected=frozenset({("s", "b"), ("s", "e")}), page_rejections=1, without_reason=0)
    verdict = judge(EXPECTED, stored)
    assert verdict.outcomes == {("s", "a"): Outcome.LOADED, ("s", "b"): Outcome.REJECTED, ("s", "c"): Outcome.LOST,
                                ("s", "d"): Outcome.DUPLICATED, ("s", "e"): Outcome.DUPLICATED}
    assert (verdict.served, verdict.rows, verdict.rejected, verdict.lost) == (5, 5, 1, 1)
    assert verdict.duplicated == 3 and verdict.stray == 1 and verdict.page_rejections == 1  # d, e and t/x
    assert not verdict.ok


def test_a_valid_record_rejected_is_unexpected() -> None:
    stored = Stored(rows=Counter({("s", "b"): 1, ("s", "d"): 1, ("s", "e"): 1}),
                    rejected=frozenset({("s", "a"), ("s", "c")}))
    verdict = judge(EXPECTED, stored)
    assert verdict.unexpected == 3 and verdict.lost == verdict.duplicated == 0 and not verdict.ok


def test_the_served_keys_are_shop_a_products_every_97th_broken() -> None:
    keys = served_keys("shop", 200, 97)
    assert len(keys) == 200 and keys[("shop", "SKU-00000000")] is Expect.LOAD
    assert [key for key, expect in keys.items() if expect is Expect.REJECT] == [("shop", "SKU-00000096"),
                                                                                 ("shop", "SKU-00000193")]
    assert set(served_keys("shop", 3, 97, strict=False).values()) == {Expect.EITHER}


def test_the_hosts_line_keeps_its_fields() -> None:
    clean = HostsResult(served=100, loaded=97, rejected=3, jobs=2, producer_status=0)
    assert clean.ok and clean.line().startswith("hosts PASS: served=100 loaded=97 rejected=3 lost=0 duplicated=0 "
                                                "jobs=2 producer_exit=0")
    wrong = HostsResult(served=100, loaded=97, rejected=3, unexpected=1, producer_status=0)
    assert not wrong.ok and "duplicated=0 unexpected=1 jobs=" in wrong.line()
