"""The import contracts of setup.cfg hold, and break, naming both modules, on a wrong-way import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-logo", "--no-cache", "setup.cfg"], cwd=tree,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(tree)})


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "ingest_workers", tmp_path / "ingest_workers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    return tmp_path


def test_the_package_keeps_its_contracts(tmp_path: Path) -> None:
    result = lint(copy_of_the_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_layers(tmp_path: Path) -> None:
    tree = copy_of_the_package(tmp_path)
    with (tree / "ingest_workers" / "load" / "dedup.py").open("a") as module:
        module.write("\nfrom ..ops.metrics import RECORDS  # noqa: E402, F401\n")
    result = lint(tree)
    assert result.returncode == 1
    assert "ingest_workers.load is not allowed to import ingest_workers.ops" in result.stdout
    assert "ingest_workers.load.dedup -> ingest_workers.ops.metrics" in result.stdout


def test_production_code_importing_the_test_tooling_breaks_the_forbidden_contract(tmp_path: Path) -> None:
    tree = copy_of_the_package(tmp_path)
    with (tree / "ingest_workers" / "runtime" / "producer.py").open("a") as module:
        module.write("\nfrom ..testing import mock_faults  # noqa: E402, F401\n")
    result = lint(tree)
    assert result.returncode == 1
    assert "ingest_workers.runtime.producer -> ingest_workers.testing.mock_faults" in result.stdout
    assert "never imports the demo and test tooling (testing/) BROKEN" in result.stdout.replace("\n", " ")


def test_a_pipeline_step_importing_the_job_breaks_the_pipelines_layers(tmp_path: Path) -> None:
    tree = copy_of_the_package(tmp_path)
    with (tree / "ingest_workers" / "pipeline" / "batches.py").open("a") as module:
        module.write("\nfrom .job import run_fetch_job  # noqa: E402, F401\n")
    result = lint(tree)
    assert result.returncode == 1
    assert "ingest_workers.pipeline.batches -> ingest_workers.pipeline.job" in result.stdout
