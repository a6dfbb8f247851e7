"""scripts/hosts, short: two worker hosts in network namespaces, one cut off mid-job and
brought back; nothing lost or loaded twice, and nothing of the lab left behind (also after
Ctrl+C). Root only: with CI=true, not being root is a failure, never a skip."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SHORT = ["--worker-hosts", "2", "--no-kill", "--cut-seconds", "8", "--sources", "4", "--records", "2000",
         "--latency", "0.1", "--timeout", "90"]


@pytest.fixture(autouse=True)
def root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("tests/integration/test_hosts.py needs root (network namespaces)")
        pytest.skip("needs root (network namespaces)")


def leftovers(pid: int) -> list[str]:
    """Namespaces of the lab made by process ``pid`` that still exist."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(f"h{pid}")]


def hosts(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ingest_workers.testing.hosts", *args, "--log-dir",
                             str(tmp_path / "hosts")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)


def told(tmp_path: Path) -> str:
    story = tmp_path / "hosts" / "scenario.log"
    return story.read_text(encoding="utf-8") if story.exists() else ""


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Its output once it ended; Ctrl+C (SIGINT) first if it is still running after ``timeout``."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        return process.communicate(timeout=60)


@pytest.mark.timeout(480)  # the run may take 170 s, then 60 s to stop, after the namespaces are set up
def test_a_worker_host_cut_off_mid_job_loses_nothing_and_loads_nothing_twice(tmp_path: Path) -> None:
    process = hosts(tmp_path, *SHORT)
    out, err = finish(process, 170)
    assert process.returncode == 0, out + err[-4000:]
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("hosts PASS: served=8000 loaded=7920 rejected=80 lost=0 duplicated=0"), verdict
    assert "worker1 cut off the network" in err and "worker1 back on the network after 8s" in err
    assert "rejoined=[worker1 on " in verdict and "every key of it loaded once; its worker is back" in verdict
    assert leftovers(process.pid) == []


def test_ctrl_c_removes_the_namespaces_and_their_processes(tmp_path: Path) -> None:
    process = hosts(tmp_path, *SHORT)
    try:
        deadline = time.monotonic() + 60
        while "cut off the network" not in told(tmp_path):
            assert time.monotonic() < deadline and process.poll() is None, "the run never got to the cut"
            time.sleep(0.2)
        assert leftovers(process.pid)
        process.send_signal(signal.SIGINT)
    finally:
        finish(process, 60)
    assert leftovers(process.pid) == []
