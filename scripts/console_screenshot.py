"""Regenerate the console screenshot of the docs and README (docs/img/console.png): the page of a
source with four and a half days of runs, every 6 hours, at 1280x800 in headless Chromium.

The runs are made up (counts from a seeded random generator, so the image is the same but for its
times) and written to ``ingest_jobs`` with SQL as jobs ``screenshot-*`` (their runs named as
``ingest schedule`` names them), which a second use replaces; nothing else in the database is
touched. Use a scratch database:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/scratch REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python scripts/console_screenshot.py [docs/img/console.png]

It applies the schema (``ingest db migrate``), starts ``ingest metrics-server`` on a free port,
and needs ``chromium`` on the PATH (``scripts/test`` installs Debian's).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2

SOURCE = "shop_products"
CATALOG = f"""[sources.{SOURCE}]
kind = "http_json"
dataset = "products"
url = "http://127.0.0.1:9/products"
pagination = "none"
fields = {{ product_id = "id", name = "title" }}
interval_seconds = 21600
"""
RUNS = 18  # every 6 hours: four and a half days


def write_runs(database_url: str, now: datetime) -> None:
    """The made-up runs, oldest first, each one job whose counts add up to what it fetched."""
    chance = random.Random(29)
    rows = []
    for index in range(RUNS):
        started = now - timedelta(hours=6 * (RUNS - index)) + timedelta(minutes=3)
        loaded, updated, duplicate = chance.randint(600, 1050), chance.randint(20, 220), chance.randint(40, 200)
        deleted, rejected = chance.choice([0, 0, 0, chance.randint(10, 40)]), chance.randint(5, 30)
        failed = index == RUNS - 6
        ended = started + timedelta(seconds=chance.randint(30, 110))
        rows.append((f"screenshot-{started:%Y%m%dT%H%M}", f"sched-{started:%Y%m%dT%H%M%SZ}",
                     "failed" if failed else "finished", loaded + updated + duplicate + deleted + rejected, loaded,
                     updated, deleted, duplicate, rejected, started, ended,
                     "TransientError: GET http://127.0.0.1:9/products: HTTP 503 after 4 attempts" if failed else None))
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM ingest_jobs WHERE source = %s AND job_id LIKE 'screenshot-%%'", (SOURCE,))
        cur.executemany("INSERT INTO ingest_jobs (job_id, run_id, source, status, fetched, loaded, updated, deleted, "
                        "duplicate, rejected, started_at, finished_at, error) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [(job, run, SOURCE, *rest) for job, run, *rest in rows])
    conn.close()


def shoot(url: str, out: Path, profile: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={profile}", "--window-size=1280,800", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=120)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/console.png").resolve()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("set DATABASE_URL and REDIS_URL to a scratch database (see this script's docstring)")
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as folder:
        catalog = Path(folder) / "catalog.toml"
        catalog.write_text(CATALOG, encoding="utf-8")
        ingest = [sys.executable, "-m", "ingest_workers", "--catalog", str(catalog)]
        subprocess.run([*ingest, "db", "migrate"], env=env, check=True, capture_output=True)
        write_runs(env["DATABASE_URL"], datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen([*ingest, "metrics-server", "--port", str(port)], env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):  # until it answers
                try:
                    urllib.request.urlopen(f"{url}/metrics", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            shoot(f"{url}/sources/{SOURCE}", out, Path(folder) / "chromium")
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
