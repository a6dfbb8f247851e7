"""scripts/bench never loses a run: BENCHMARKS.md is written after each part, a part that fails is
reported with its reason, and the parts after it still run (benchmarks/parts.py)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.parts import Parts
from benchmarks.report import Figure, Report


def test_a_failed_part_is_reported_and_the_others_stand(tmp_path: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    said: list[str] = []
    parts = Parts(Report(["header"]), output, said.append, skip=("naive",))

    def ceiling() -> None:
        parts.report.figures.append(Figure("Load ceiling", 1000.0, "rows/s"))
        parts.values["ceiling"] = 1000.0

    def freshness() -> None:
        raise SystemExit("a freshness job did not end within 60 s")

    assert parts.run("load ceiling", ceiling)
    assert "Load ceiling" in output.read_text()  # written as soon as it was measured
    assert not parts.run("freshness", freshness)
    assert not parts.run("needs the e2e figure", lambda: parts.need("e2e"))
    assert not parts.run("naive", lambda: parts.report.figures.append(Figure("Naive", 1.0, "rows/s")))
    assert parts.run("loader", lambda: parts.report.figures.append(
        Figure("Our loader", 600.0, "rows/s", "ceiling", parts.need("ceiling"), 0.6)))

    text = output.read_text()
    assert "Load ceiling" in text and "Our loader" in text and "Naive" not in text
    assert "- **freshness**: a freshness job did not end within 60 s" in text
    assert "- **needs the e2e figure**: Missing: needs e2e, which an earlier part failed to measure" in text
    assert "Parts not run in this run (`--skip`): naive." in text
    assert [name for name, _ in parts.report.failed] == ["freshness", "needs the e2e figure"]
    assert any("FAILED" in line for line in said)
