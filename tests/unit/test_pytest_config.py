"""The suite's own pytest settings (setup.cfg [tool:pytest]): a hung test fails alone, by its name."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

SETUP_CFG = Path(__file__).resolve().parents[2] / "setup.cfg"


def test_every_test_has_a_time_limit_enforced_by_a_signal() -> None:
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    assert config["tool:pytest"]["timeout_method"] == "signal"  # the thread method would end the whole run
    assert 60 <= int(config["tool:pytest"]["timeout"]) <= 600


def test_a_hung_test_fails_by_its_name_and_the_run_goes_on(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntimeout = 1\ntimeout_method = signal\n")
    pytester.makepyfile(test_hangs="""
import threading


def test_hangs():
    threading.Event().wait()


def test_after_it():
    pass
""")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_hangs.py::test_hangs - Failed: Timeout (>1.0s) from pytest-timeout."])
