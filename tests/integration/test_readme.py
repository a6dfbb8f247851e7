"""The README's commands as a new user runs them: the ```sh blocks of its "Quick start" and
"Your own API" sections, taken from the README in order and run by one bash from a copy of the
repository (its tracked files as they are in the working tree), against the test's own Redis
database and PostgreSQL database (given as REDIS_URL and DATABASE_URL) and the project's mock
source. Two lines of the quick start are run otherwise, each for the reason said where it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2.extensions
import pytest
from psycopg2 import sql

from ingest_workers.testing.devservices import Services, free_port
from tests.helpers import DATASET_TABLES, DEFAULT_SOURCES, expected_refused, scalar, served_record

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)  # the environment running the tests: the clone's `.venv`
DEMO_RECORDS = 2000
# `scripts/demo` as written serves 20,000 records per feed on port 8765: here a smaller run (the
# tests' time) on a free port (another run on this machine may hold 8765). What it does is the same.
DEMO_AS_RUN = f"scripts/demo --records {DEMO_RECORDS} --port 0 --workers 2"
WALK_RECORDS = 2000  # the README's `ingest mock-sources --records 2000`
WALK_TABLE = "shop_items"  # the README's `--name shop_items`


def sh_blocks(readme: str, title: str) -> list[str]:
    """The ```sh blocks of the README section headed ``## title``, in order."""
    section = readme.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [part.split("\n```", 1)[0] for part in section.split("\n```sh\n")[1:]]


def quick_start_lines(blocks: list[str]) -> list[str]:
    """The quick start's commands, with `scripts/test` left out and `scripts/demo` made smaller."""
    lines, seen = [], set()
    for line in "\n".join(blocks).splitlines():
        command = line.split("#", 1)[0].strip()
        seen.add(command)
        if command == "scripts/test":
            continue  # this test runs inside scripts/test: running it here would recurse
        lines.append(DEMO_AS_RUN if command == "scripts/demo" else line)
    assert {"scripts/demo", "scripts/test"} <= seen, "the quick start names both commands exactly"
    return lines


def copy_of_repository(target: Path) -> Path:
    """The repository's files (tracked and new, not ignored) as in the working tree, with `.venv`
    pointing at the tests' environment, as a fresh clone has after `scripts/test`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name, follow_symlinks=False)
    (target / ".venv").symlink_to(VENV)
    return target


def venv_covers(copy: Path) -> bool:
    """True when `.venv` was installed from these very setup.cfg and pyproject.toml (scripts/lib/venv.sh's
    stamp): otherwise `scripts/demo` would reinstall the shared environment from the temporary copy."""
    digest = hashlib.sha256((copy / "setup.cfg").read_bytes() + (copy / "pyproject.toml").read_bytes())
    stamp = VENV / ".installed"
    return stamp.is_file() and any(line.startswith(digest.hexdigest()[:16] + " ")
                                   for line in stamp.read_text().splitlines())


@pytest.fixture
def no_walk_table(services: Services) -> Iterator[None]:
    """The walk's table dropped before and after (the `pg` fixture truncates only the built-in tables)."""
    def drop() -> None:
        conn = psycopg2.connect(services.database_url)
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(WALK_TABLE)))
        conn.close()
    drop()
    yield
    drop()


def run_script(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with bash in its own process group, killed whole afterwards (the walk's mock runs
    in the background until the README's `kill`; a failure before it must not leave it running)."""
    process = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=600)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def clean_environment(services: Services) -> dict[str, str]:
    """The user's shell: no `ingest` on the PATH until `source .venv/bin/activate`, no INGEST_* settings,
    the test's own services, a free port for the walk's mock."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != VENV / "bin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_") and k != "VIRTUAL_ENV"}
    return {**env, "PATH": os.pathsep.join(path), "REDIS_URL": services.redis_url,
            "DATABASE_URL": services.database_url, "MOCK_PORT": str(free_port())}


def test_the_readme_s_quick_start_and_your_own_api_run_as_written(
    services: Services, pg: psycopg2.extensions.connection, redis_client: object, no_walk_table: None,
    tmp_path: Path,
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    script = "\n".join(["set -eo pipefail", *quick_start_lines(sh_blocks(readme, "Quick start")),
                        *sh_blocks(readme, "Your own API")])
    copy = copy_of_repository(tmp_path / "clone")
    assert venv_covers(copy), f"{VENV} was installed from another setup.cfg: run scripts/test (it reinstalls)"
    result = run_script(script, copy, clean_environment(services))
    assert result.returncode == 0, result.stdout + result.stderr

    # The quick start: every demo source loaded what its stages accept of the records served.
    for source, (dataset, _) in DEFAULT_SOURCES.items():
        assert scalar(pg, f"SELECT count(*) FROM {DATASET_TABLES[dataset]} WHERE source = %s",
                      source) == DEMO_RECORDS - expected_refused(source, DEMO_RECORDS), source

    # Your own API: the draft names the source as the README says, and the table holds exactly the
    # served products whose values have the types seen (a price that is a number, a true/false stock).
    assert f"[sources.{WALK_TABLE}]" in (copy / "catalog.toml").read_text()
    served = [served_record("shop_products", i) for i in range(WALK_RECORDS)]
    fitting = {r["id"] for r in served if isinstance(r["price"], float) and isinstance(r["in_stock"], bool)}
    with pg.cursor() as cur:
        cur.execute(sql.SQL("SELECT id FROM {}").format(sql.Identifier(WALK_TABLE)))
        assert {row[0] for row in cur.fetchall()} == fitting
    assert scalar(pg, "SELECT count(*) FROM rejected_records WHERE source = %s", WALK_TABLE) \
        == WALK_RECORDS - len(fitting) > 0
    summary = json.loads((copy / "out" / "summary.json").read_text())
    assert summary["sources"][WALK_TABLE]["loaded"] == len(fitting)
    assert "(3 rows)" in result.stdout  # the README's psql query
