"""Several hosts on one machine (``scripts/hosts``, root only): workers on hosts that fail
independently, sharing one Redis and one PostgreSQL, and proof that nothing was lost or
loaded twice.

The lab (:mod:`ingest_workers.testing.netns`): network namespaces on a private subnet,
joined by a bridge of their own:

* ``services`` (.1): Redis and PostgreSQL from the machine's binaries (PostgreSQL as the
  ``postgres`` user, in a fresh data directory), and the mock source, all on that address;
* ``worker1`` .. ``workerN`` (.11 ..): ``ingest workers --count 1``, the production command,
  whose environment is exactly ``REDIS_URL`` and ``DATABASE_URL``;
* ``producer`` (.20): ``ingest db migrate``, ``ingest enqueue --sources all --wait`` and
  ``ingest metrics-server``; the scenario itself runs there (it is the operator's host).

During the run, ``worker1``'s cable is pulled for ``cut_seconds`` while it is busy, and (full
run) every process of ``worker2`` is SIGKILLed while busy and the host started again
``down_seconds`` later. The verdict line gives served, loaded, rejected, lost and duplicated
records, the jobs another host took over and after how many seconds, and what the rejoined
host did with the job it held when it was cut. Exit status 1 on any loss or duplicate.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg2
import redis
import requests
from rq.worker import Worker

from .mock_sources import count_invalid
from .netns import Host, Lab

SUBNET = "10.231.0"
SERVICES, PRODUCER, FIRST_WORKER = 1, 20, 11
PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = "/usr/bin/redis-server"
MOCK_PORT, METRICS_PORT = 8765, 9108


@dataclass(frozen=True)
class HostsPlan:
    worker_hosts: int = 3
    sources: int = 10
    records: int = 3000  # per source
    latency: float = 0.2  # seconds per page of 100: 30 pages, about 6 s a source
    cut_seconds: float = 20.0
    kill: bool = True  # also kill every process of worker2, and start it again
    down_seconds: float = 5.0
    timeout: float = 300.0
    invalid_every: int = 97


@dataclass
class Takeover:
    host: str  # the host that lost the job
    job_id: str
    seconds: float | None = None  # until another attempt started (None: it never needed one)
    by: str = ""


@dataclass
class HostsResult:
    served: int = 0
    loaded: int = 0
    rejected: int = 0
    lost: int = 0
    duplicated: int = 0
    jobs: int = 0
    producer_status: int | None = None
    metrics_loaded: int | None = None
    takeovers: list[Takeover] = field(default_factory=list)
    rejoined: str = ""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated) and self.producer_status == 0 and \
            self.loaded + self.rejected == self.served

    def line(self) -> str:
        taken = ", ".join(f"{t.job_id} lost by {t.host}: " + (f"again after {t.seconds:.1f}s on {t.by or '?'}"
                                                              if t.seconds is not None else "never run again")
                          for t in self.takeovers) or "none"
        return (f"hosts {'PASS' if self.ok else 'FAIL'}: served={self.served} loaded={self.loaded} "
                f"rejected={self.rejected} lost={self.lost} duplicated={self.duplicated} jobs={self.jobs} "
                f"producer_exit={self.producer_status} metrics_loaded={self.metrics_loaded} "
                f"taken_over=[{taken}] rejoined=[{self.rejoined}] elapsed={self.elapsed:.1f}s")


def layout(lab: Lab, plan: HostsPlan) -> tuple[Host, Host, list[Host]]:
    services = lab.attach("services", SERVICES)
    producer = lab.attach("producer", PRODUCER)
    workers = [lab.attach(f"worker{i + 1}", FIRST_WORKER + i) for i in range(plan.worker_hosts)]
    return services, producer, workers


def urls() -> tuple[str, str]:
    return f"redis://{SUBNET}.{SERVICES}:6379/0", f"postgresql://postgres@{SUBNET}.{SERVICES}:5432/ingest"


# ---------------------------------------------------------------- the lab (runs in the root namespace)

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


def plan_args(plan: HostsPlan) -> list[str]:
    return ["--worker-hosts", str(plan.worker_hosts), "--sources", str(plan.sources), "--records", str(plan.records),
            "--latency", str(plan.latency), "--cut-seconds", str(plan.cut_seconds),
            "--down-seconds", str(plan.down_seconds), "--timeout", str(plan.timeout),
            *([] if plan.kill else ["--no-kill"])]


# ---------------------------------------------------------------- the scenario (runs on the producer host)

class Scenario:
    def __init__(self, lab: Lab, plan: HostsPlan, log_dir: Path, log: Callable[[str], None]) -> None:
        self.lab, self.plan, self.log_dir, self.log = lab, plan, log_dir, log
        self.services, self.producer, self.workers = layout(lab, plan)
        self.redis_url, self.database_url = urls()
        self.names = [f"hosts_{i}" for i in range(plan.sources)]
        self.started = time.monotonic()

    def say(self, words: str) -> None:
        line = f"[{time.monotonic() - self.started:5.1f}s] {words}"
        self.log(line)
        with (self.log_dir / "scenario.log").open("a", encoding="utf-8") as story:
            story.write(line + "\n")

    def run(self) -> HostsResult:
        result = HostsResult(served=self.plan.sources * self.plan.records, jobs=self.plan.sources)
        client = _wait_for_services(self.redis_url, self.database_url)
        catalog = self.log_dir / "hosts-catalog.toml"
        catalog.write_text("".join(
            f'[sources.{name}]\nkind = "http_json"\ndataset = "products"\n'
            f'url = "http://{self.services.address}:{MOCK_PORT}/products"\npage_size = 100\n'
            f'fields = {{ product_id = "id", name = "title" }}\n\n' for name in self.names), encoding="utf-8")
        env = {"REDIS_URL": self.redis_url, "DATABASE_URL": self.database_url}
        ingest = [sys.executable, "-m", "ingest_workers"]
        self.lab.run(self.services, [*ingest, "mock-sources", "--host", self.services.address, "--port",
                                     str(MOCK_PORT), "--records", str(self.plan.records), "--latency",
                                     str(self.plan.latency)], {}, self._log_file("services-mock"))
        subprocess.run([*ingest, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        for host in self.workers:
            self._start_workers(host)
        _until(lambda: len(Worker.all(connection=client)) == len(self.workers), 60, "every worker host's worker")
        self.say(f"{len(self.workers)} worker hosts up: "
                 f"{', '.join(sorted(w.name for w in Worker.all(connection=client)))}")
        self.lab.run(self.producer, [*ingest, "metrics-server", "--host", self.producer.address, "--port",
                                     str(METRICS_PORT)], env, self._log_file("producer-metrics"))
        producer = self.lab.run(self.producer, [*ingest, "enqueue", "--sources", "all", "--wait", "--timeout",
                                                str(self.plan.timeout)],
                                {**env, "INGEST_CATALOG": str(catalog)}, self._log_file("producer-enqueue"))
        self.started = time.monotonic()
        self._disrupt(client, result)
        try:
            result.producer_status = producer.wait(timeout=self.plan.timeout + 30)
        except subprocess.TimeoutExpired:
            producer.kill()
            result.producer_status = producer.wait()
        result.elapsed = time.monotonic() - self.started
        self.say(f"producer exited with status {result.producer_status}")
        self._check(result)
        result.metrics_loaded = _scrape_loaded(f"http://{self.producer.address}:{METRICS_PORT}/metrics", self.names)
        return result

    def _disrupt(self, client: redis.Redis, result: HostsResult) -> None:
        """Cut worker1 while busy, kill worker2 while busy (full run), bring both back; watch takeovers."""
        cut_host, cut_job = self.workers[0], self._busy_job(client, self.workers[0])
        self.lab.cut(cut_host)
        cut_at = time.monotonic()
        self.say(f"{cut_host.name} cut off the network (link down) while running {cut_job}")
        takeovers = [Takeover(cut_host.name, cut_job)]
        lost_at, attempts = {cut_job: cut_at}, {cut_job: self._attempts(cut_job)}
        victim = self.workers[1] if self.plan.kill and len(self.workers) > 1 else None
        kill_at = restored_at = restarted_at = None
        while time.monotonic() - self.started < self.plan.timeout:
            now = time.monotonic()
            if victim is not None and kill_at is None and (job := self._busy_job(client, victim, wait=False)):
                killed = self.lab.kill_all(victim)
                kill_at = lost_at[job] = time.monotonic()
                takeovers.append(Takeover(victim.name, job))
                attempts[job] = self._attempts(job)
                self.say(f"{victim.name}: all {killed} processes SIGKILLed while running {job}")
            if victim is not None and kill_at is not None and restarted_at is None and \
                    now - kill_at >= self.plan.down_seconds:
                self._start_workers(victim)
                restarted_at = now
                self.say(f"{victim.name} started again after {now - kill_at:.0f}s")
            if restored_at is None and now - cut_at >= self.plan.cut_seconds:
                self.lab.restore(cut_host)
                restored_at = now
                self.say(f"{cut_host.name} back on the network after {now - cut_at:.0f}s")
            for takeover in takeovers:
                if takeover.seconds is None and self._attempts(takeover.job_id) > attempts[takeover.job_id]:
                    takeover.seconds = now - lost_at[takeover.job_id]
                    takeover.by = self._runner(client, takeover.job_id)
                    self.say(f"{takeover.job_id} started again {takeover.seconds:.1f}s after {takeover.host} was "
                             f"lost, by {takeover.by or 'a worker that finished it before it was seen'}")
            disrupted = restored_at is not None and (victim is None or restarted_at is not None)
            if disrupted and self._all_ended():
                break
            time.sleep(0.5)
        if restored_at is None:  # the run ended (or timed out) within the cut
            self.lab.restore(cut_host)
            restored_at = time.monotonic()
        result.takeovers = takeovers
        result.rejoined = self._rejoined_outcome(client, cut_host, cut_job, restored_at)

    def _busy_job(self, client: redis.Redis, host: Host, wait: bool = True) -> str:
        """The job a worker of ``host`` runs now (with ``wait``, until it runs one)."""
        deadline = time.monotonic() + 60
        while True:
            for worker in Worker.all(connection=client):
                if worker.hostname == host.name and worker.get_current_job_id():
                    return str(worker.get_current_job_id())
            if not wait:
                return ""
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host.name} never took a job")
            time.sleep(0.2)

    def _runner(self, client: redis.Redis, job_id: str) -> str:
        for worker in Worker.all(connection=client):
            if worker.get_current_job_id() == job_id:
                return str(worker.hostname)
        return ""

    def _has_workers(self, client: redis.Redis, host: Host) -> bool:
        return any(w.hostname == host.name for w in Worker.all(connection=client))

    def _attempts(self, job_id: str) -> int:
        return int(self._query("SELECT coalesce(max(attempts), 0) FROM ingest_jobs WHERE job_id = %s", job_id))

    def _all_ended(self) -> bool:
        ended = self._query("SELECT count(*) FROM ingest_jobs WHERE source = ANY(%s) AND status = 'finished'",
                            self.names)
        return int(ended) >= self.plan.sources

    def _rejoined_outcome(self, client: redis.Redis, host: Host, job_id: str, restored_at: float) -> str:
        """What ``host`` did with ``job_id`` after it came back, from its own log, and whether it works again."""
        _until(lambda: self._has_workers(client, host), 60, f"{host.name}'s worker to be registered again")
        text = (self.log_dir / f"{host.name}.log").read_text(encoding="utf-8", errors="replace")
        ends = [_attempt_end(line) for line in text.splitlines()
                if job_id in line and (" done: " in line or " failed after " in line)]
        source = job_id.rsplit("-", 1)[-1]
        valid = self.plan.records - count_invalid(self.plan.records, self.plan.invalid_every)
        rows, keys = self._query_row("SELECT count(*), count(DISTINCT product_id) FROM products WHERE source = %s",
                                     source)
        once = "every key of it loaded once" if rows == keys == valid else f"{rows} rows for {keys} keys of {valid}"
        said = "; then ".join(ends) if ends else "no attempt of it ended there (its work horse was stopped)"
        return f"{host.name} on {job_id}: {said}; {once}; its worker is back"

    def _check(self, result: HostsResult) -> None:
        loaded, distinct = self._query_row("SELECT count(*), count(DISTINCT (source, product_id)) FROM products "
                                           "WHERE source = ANY(%s)", self.names)
        result.loaded = int(loaded)
        result.rejected = int(self._query("SELECT count(*) FROM rejected_records WHERE source = ANY(%s) "
                                          "AND stage <> 'fetch'", self.names))
        both = int(self._query("SELECT count(*) FROM rejected_records r JOIN products p ON p.source = r.source "
                               "AND p.product_id = r.payload->>'id' WHERE r.source = ANY(%s)", self.names))
        result.duplicated = (result.loaded - int(distinct)) + both + \
            max(0, result.loaded + result.rejected - result.served)
        valid = self.plan.sources * (self.plan.records - count_invalid(self.plan.records, self.plan.invalid_every))
        result.lost = max(result.served - result.loaded - result.rejected, abs(valid - result.loaded), 0)

    def _start_workers(self, host: Host) -> None:
        self.lab.run(host, [sys.executable, "-m", "ingest_workers", "workers", "--count", "1"],
                     {"REDIS_URL": self.redis_url, "DATABASE_URL": self.database_url}, self._log_file(host.name))

    def _log_file(self, name: str) -> IO[bytes]:
        return (self.log_dir / f"{name}.log").open("ab")

    def _query(self, statement: str, *params: object) -> object:
        return self._query_row(statement, *params)[0]

    def _query_row(self, statement: str, *params: object) -> tuple[object, ...]:
        with psycopg2.connect(self.database_url, connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute(statement, params)
            row = cur.fetchone()
        conn.close()
        return tuple(row)


def _attempt_end(line: str) -> str:
    """What one attempt's end line in a worker's log says, in words."""
    counts = dict(re.findall(r"'(\w+)': (\d+)", line))
    if " done: " in line:
        return (f"an attempt committed {counts.get('loaded', '?')} new rows "
                f"({counts.get('duplicate', '?')} already there)")
    error = line.split("}: ", 1)[-1][:70]
    return f"an attempt failed ({error}) after committing {counts.get('loaded', '?')}, the batch in flight rolled back"


def _wait_for_services(redis_url: str, database_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1)

    def up() -> bool:
        try:
            client.ping()
            conn = psycopg2.connect(database_url.rsplit("/", 1)[0] + "/postgres", connect_timeout=1)
        except (redis.RedisError, psycopg2.Error):
            return False
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = 'ingest'")
            if not cur.fetchone():
                cur.execute("CREATE DATABASE ingest")
        conn.close()
        return True

    _until(up, 60, "Redis and PostgreSQL on the services host")
    return client


def _scrape_loaded(url: str, names: list[str]) -> int | None:
    try:
        text = requests.get(url, timeout=5).text
    except requests.RequestException:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ingest_records_total{") and 'outcome="loaded"' in line and \
                any(f'source="{name}"' in line for name in names):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    """``python -m ingest_workers.testing.hosts [--worker-hosts 3 ...]`` as root (see scripts/hosts)."""
    parser = argparse.ArgumentParser(prog="hosts", description=__doc__.splitlines()[0])
    parser.add_argument("--worker-hosts", type=int, default=HostsPlan.worker_hosts)
    parser.add_argument("--sources", type=int, default=HostsPlan.sources)
    parser.add_argument("--records", type=int, default=HostsPlan.records, help="per source")
    parser.add_argument("--latency", type=float, default=HostsPlan.latency, help="seconds per page")
    parser.add_argument("--cut-seconds", type=float, default=HostsPlan.cut_seconds)
    parser.add_argument("--down-seconds", type=float, default=HostsPlan.down_seconds)
    parser.add_argument("--no-kill", action="store_true", help="only cut worker1; kill no host")
    parser.add_argument("--timeout", type=float, default=HostsPlan.timeout)
    parser.add_argument("--log-dir", type=Path, default=Path("out/hosts"))
    parser.add_argument("--inside", metavar="PREFIX", help=argparse.SUPPRESS)  # the scenario, on the producer host
    args = parser.parse_args(argv)
    plan = HostsPlan(worker_hosts=args.worker_hosts, sources=args.sources, records=args.records,
                     latency=args.latency, cut_seconds=args.cut_seconds, kill=not args.no_kill,
                     down_seconds=args.down_seconds, timeout=args.timeout)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    log_dir = args.log_dir.resolve()
    if args.inside:
        result = Scenario(Lab(args.inside, SUBNET), plan, log_dir, log).run()
        print(result.line(), flush=True)
        return 0 if result.ok else 1
    if os.geteuid() != 0:
        log("hosts: needs root (network namespaces); run it with sudo")
        return 2
    return run_lab(plan, log_dir, log)


if __name__ == "__main__":
    sys.exit(main())
