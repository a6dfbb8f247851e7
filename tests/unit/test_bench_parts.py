"""scripts/bench never loses a run: BENCHMARKS.md is written after each part, a part that fails is
reported with its reason, and the parts after it still run (benchmarks/parts.py)."""

from __future__ import annotations

import ast
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


def test_a_section_written_after_the_report_stays_when_a_later_part_fails(tmp_path: Path) -> None:
    """The fan-out section is the report's trailer: scripts/bench writes it, and a later failure keeps it."""
    output = tmp_path / "BENCHMARKS.md"
    parts = Parts(Report(["header"]), output, lambda line: None)
    assert parts.run("fan-out", lambda: setattr(parts, "trailer", parts.trailer + "\n## Fan-out\n\nours 6.6x\n"))
    assert "## Fan-out" in output.read_text()
    assert not parts.run("overlapped fetch", lambda: 1 / 0)
    text = output.read_text()
    assert "## Fan-out\n\nours 6.6x" in text and "- **overlapped fetch**: ZeroDivisionError" in text


def test_the_harness_modules_keep_the_package_shape() -> None:
    """benchmarks/ is held to the package's limits (tests/unit/test_codebase_shape.py): modules of one
    job each, at most 400 lines, functions at most 50."""
    harness = Path(__file__).resolve().parents[2] / "benchmarks"
    long = []
    for path in sorted(harness.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            long.append(f"{path.name}: {len(text.splitlines())} lines")
        long += [f"{path.name}:{node.lineno} {node.name}" for node in ast.walk(ast.parse(text))
                 if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 50]
    assert not long, f"over the limits: {long}"
