"""What the console's integration tests share: a page as headless Chromium renders it (with
screenshots at 1280x800 and phone width), a run through real workers waited for to its last child
job, and `ingest` commands run in-process against the test's services."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg2.extensions
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run
from tests.dom import Dom

SIZES = (("1280,800", ""), ("390,844", "-phone"))  # a laptop's screen and a phone's


def browse(url: str, tmp_path: Path, shot: str, wait: int = 0) -> Dom:
    """The DOM of ``url`` after Chromium loaded it (and let ``wait`` seconds of virtual time pass, in
    which the page refreshes itself), and screenshots of it at 1280x800 and phone width."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: scripts/test installs Debian's package (apt-get install chromium)"
    base = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium'}"]
    for size, suffix in SIZES:
        done = subprocess.run([*base, f"--window-size={size}", f"--screenshot={tmp_path / f'{shot}{suffix}.png'}",
                               url], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and (tmp_path / f"{shot}{suffix}.png").stat().st_size > 0, done.stderr
    budget = [f"--virtual-time-budget={wait * 1000}"] if wait else []
    done = subprocess.run([*base, *budget, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return Dom.parse(done.stdout)


def run_jobs(queue: Any, settings: Settings, specs: Sequence[Any], run_id: str,
             pg: psycopg2.extensions.connection | None = None) -> list[str]:
    """Enqueue a run of ``specs`` and wait until its jobs ended; given ``pg``, the child jobs they fan
    out too (the run's jobs as ``ingest_jobs`` lists them). Returns the ids of the jobs waited for."""
    job_ids = [e.job_id for e in enqueue_run(queue, settings, specs, run_id)]

    def listed() -> list[str]:
        assert pg is not None
        with pg, pg.cursor() as cur:
            cur.execute("SELECT job_id FROM ingest_jobs WHERE run_id = %s ORDER BY job_id", (run_id,))
            return [row[0] for row in cur.fetchall()]

    state = wait_for_jobs(queue, job_ids, lambda state: None, timeout=180, listed=listed if pg else None)
    assert state.done == state.total >= len(job_ids), state
    return job_ids


def ingest(settings: Settings, catalog: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """The output of ``ingest --catalog CATALOG ARGS`` on the test's services; it must succeed."""
    environment = {"REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
                   "INGEST_QUEUE": settings.queue, **(env or {})}
    result = CliRunner().invoke(main, ["--catalog", str(catalog), *args], env=environment)
    assert result.exit_code == 0, result.output
    return result.output
