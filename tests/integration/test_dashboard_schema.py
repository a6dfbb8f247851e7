"""The Grafana dashboard against Grafana's published schema (``@grafana/schema`` from the npm
registry, the version of the compose file's Grafana), type-checked by the real TypeScript
compiler (Grafana itself cannot run here); and each panel's series of one unit, on one axis."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "ingest.json"
NPM = ROOT / ".state" / "npm"  # scripts/test installs tests/grafana/package.json there
TEMPLATE = ROOT / "tests" / "grafana" / "dashboard-check.ts.in"
# The unit ids each kind of expression may be shown in.
UNITS = {"seconds": {"s", "ms"}, "per second": {"rps", "reqps", "ops", "wps"},
         "count": {"short", "none", "percentunit", "percent"}}


@pytest.fixture
def type_check() -> Iterator[Any]:
    tsc = NPM / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), f"{tsc} is missing: scripts/test installs tests/grafana/package.json with npm"
    written: list[Path] = []

    def check(dashboard: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        source = NPM / f"dashboard-check-{uuid.uuid4().hex[:8]}.ts"  # beside node_modules, for resolution
        source.write_text(TEMPLATE.read_text().replace("@DASHBOARD@", json.dumps(dashboard, indent=2)))
        written.append(source)
        return subprocess.run([str(tsc), "--noEmit", "--strict", "--skipLibCheck", "--module", "commonjs",
                               "--moduleResolution", "node", "--target", "es2020", str(source)],
                              capture_output=True, text=True, timeout=300)

    yield check
    for source in written:
        source.unlink(missing_ok=True)


@pytest.mark.timeout(360)  # tsc may take its 300 s under load: its own timeout speaks first
def test_the_dashboard_is_a_grafana_dashboard_by_its_published_schema(type_check: Any) -> None:
    done = type_check(json.loads(DASHBOARD.read_text()))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(660)  # two tsc runs of up to 300 s each
def test_the_schema_check_catches_a_wrong_key_and_a_wrong_value(type_check: Any) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard["panels"][0]["gridPos"]["width"] = 12
    dashboard["panels"][1]["fieldConfig"]["defaults"]["thresholds"] = {"mode": "relative-ish", "steps": []}
    done = type_check(dashboard)
    assert done.returncode != 0
    assert "'\"width\"' does not exist" in done.stdout
    assert '"relative-ish"' in done.stdout


def quantity(expr: str) -> str:
    """What an expression measures, from its metric names: seconds, a rate per second, or a count."""
    if "histogram_quantile" in expr or re.search(r"_sum\[.*_count\[", expr):  # a quantile, or a mean
        return "seconds" if re.search(r"_seconds_(bucket|sum)\b", expr) else "count"
    if re.search(r"\b(rate|irate)\(", expr):
        return "per second"
    return "seconds" if "_seconds" in expr else "count"


def test_every_panel_shows_one_unit_and_the_unit_fits_its_series() -> None:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        kinds = {quantity(target["expr"]) for target in panel["targets"]}
        assert len(kinds) == 1, f"panel {panel['title']!r} mixes {sorted(kinds)} on one axis"
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit in UNITS[kinds.pop()], f"panel {panel['title']!r}: unit {unit!r} does not fit its series"
        assert not panel["fieldConfig"]["overrides"], "an override may give a series its own unit and axis: check it"
