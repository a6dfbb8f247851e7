"""The lab, built in the root namespace: the namespaces, Redis and PostgreSQL on the services
host, then the scenario started on the producer host; everything removed on exit, failure,
Ctrl+C and SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..netns import Host, Lab
from .plan import PG_BIN, REDIS_SERVER, SUBNET, HostsPlan, layout, plan_args


def run_lab(plan: HostsPlan, log_dir: Path, log: Callable[[str], None]) -> int:
    """Build the lab, start the services, run the scenario on the producer host, tear everything down."""
    for tool in (PG_BIN / "postgres", PG_BIN / "initdb", Path(REDIS_SERVER)):
        if not tool.exists():
            log(f"hosts: {tool} is missing (apt-get install postgresql-15 redis-server)")
            return 2
    for signum in (signal.SIGTERM, signal.SIGHUP):  # like Ctrl+C: unwind, so the finally below removes it all
        signal.signal(signum, lambda number, frame: sys.exit(128 + number))
    lab = Lab(f"h{os.getpid()}", SUBNET)
    pgdata = Path(tempfile.mkdtemp(prefix="ingest-hosts-pg-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        lab.open()
        services, producer, workers = layout(lab, plan)
        for host in (services, producer, *workers):
            lab.add_host(host.name, int(host.address.rsplit(".", 1)[1]))
        log(f"hosts: namespaces {', '.join(h.namespace for h in lab.hosts.values())} on {SUBNET}.0/24")
        _start_services(lab, services, pgdata, log_dir)
        scenario = lab.command(producer, [sys.executable, "-m", "ingest_workers.testing.hosts", "--inside",
                                          lab.prefix, *plan_args(plan), "--log-dir", str(log_dir)])
        return subprocess.run(scenario, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}).returncode
    finally:
        lab.close()
        shutil.rmtree(pgdata, ignore_errors=True)
        log("hosts: namespaces, bridge and processes removed")


def _start_services(lab: Lab, host: Host, pgdata: Path, log_dir: Path) -> None:
    """PostgreSQL (a fresh data directory, trusting the lab's subnet) and Redis, as ``postgres``."""
    shutil.chown(pgdata, "postgres", "postgres")
    subprocess.run(["/usr/sbin/runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(pgdata / "data"),
                    "-A", "trust", "-U", "postgres", "--no-sync"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.STDOUT)
    with (pgdata / "data" / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {SUBNET}.0/24 trust\n")
    env = {"PATH": "/usr/bin:/bin"}
    lab.run(host, [str(PG_BIN / "postgres"), "-D", str(pgdata / "data"), "-h", host.address, "-p", "5432",
                   "-k", str(pgdata), "-c", "fsync=off", "-c", "synchronous_commit=off"], env,
            (log_dir / "services-postgres.log").open("ab"), user="postgres")
    lab.run(host, [REDIS_SERVER, "--bind", host.address, "--port", "6379", "--save", "", "--appendonly", "no",
                   "--protected-mode", "no", "--dir", str(pgdata)], env, (log_dir / "services-redis.log").open("ab"),
            user="postgres")
