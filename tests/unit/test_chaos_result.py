"""The chaos run's verdict: any loss, duplicate, reasonless rejection or unfinished job fails it."""

from __future__ import annotations

import dataclasses

import pytest

from ingest_workers.testing.chaos import ChaosResult, main

CLEAN = ChaosResult(served=100, loaded=97, rejected=3, jobs=2)


def test_a_clean_run_passes() -> None:
    assert CLEAN.ok and CLEAN.line().startswith("chaos PASS: served=100 loaded=97 rejected=3 lost=0 duplicated=0")


@pytest.mark.parametrize("change", [
    {"loaded": 96, "lost": 1}, {"loaded": 98, "duplicated": 1}, {"without_reason": 1}, {"jobs_failed": 1},
    {"jobs_unfinished": 1}, {"loaded": 96}, {"unexpected": 1},
], ids=["lost", "duplicated", "no reason", "failed job", "unfinished job", "totals disagree", "ended otherwise"])
def test_any_defect_fails_the_run(change: dict[str, int]) -> None:
    result = dataclasses.replace(CLEAN, **change)
    assert not result.ok and result.line().startswith("chaos FAIL")


def test_the_command_needs_its_urls(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2 and "--redis-url" in capsys.readouterr().err
