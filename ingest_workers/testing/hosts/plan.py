"""What a hosts run does (:class:`HostsPlan`) and where: the lab's subnet, hosts and services."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..netns import Host, Lab

SUBNET = "10.231.0"
SERVICES, PRODUCER, FIRST_WORKER = 1, 20, 11
PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = "/usr/bin/redis-server"
MOCK_PORT, METRICS_PORT = 8765, 9108


@dataclass(frozen=True)
class HostsPlan:
    """The run: how many hosts and sources, how the mock serves them, how long each fault lasts."""

    worker_hosts: int = 3
    sources: int = 10
    records: int = 3000  # per source
    latency: float = 0.2  # seconds per page of 100: 30 pages, about 6 s a source
    cut_seconds: float = 20.0
    kill: bool = True  # also kill every process of worker2, and start it again
    down_seconds: float = 5.0
    timeout: float = 300.0
    invalid_every: int = 97  # every 97th product served is broken (the verdict expects it rejected)

    @property
    def source_names(self) -> list[str]:
        return [f"hosts_{i}" for i in range(self.sources)]


def layout(lab: Lab, plan: HostsPlan) -> tuple[Host, Host, list[Host]]:
    """The services host, the producer host and the worker hosts (as ``lab`` names them)."""
    services = lab.attach("services", SERVICES)
    producer = lab.attach("producer", PRODUCER)
    workers = [lab.attach(f"worker{i + 1}", FIRST_WORKER + i) for i in range(plan.worker_hosts)]
    return services, producer, workers


def urls() -> tuple[str, str]:
    """``REDIS_URL`` and ``DATABASE_URL`` on the services host."""
    return f"redis://{SUBNET}.{SERVICES}:6379/0", f"postgresql://postgres@{SUBNET}.{SERVICES}:5432/ingest"


def plan_args(plan: HostsPlan) -> list[str]:
    """``plan`` as command-line options (for the scenario's process on the producer host)."""
    return ["--worker-hosts", str(plan.worker_hosts), "--sources", str(plan.sources), "--records", str(plan.records),
            "--latency", str(plan.latency), "--cut-seconds", str(plan.cut_seconds),
            "--down-seconds", str(plan.down_seconds), "--timeout", str(plan.timeout),
            *([] if plan.kill else ["--no-kill"])]


def catalog_text(plan: HostsPlan, mock_address: str) -> str:
    """The catalog the producer enqueues: every source reads shop A's products from the mock."""
    return "".join(
        f'[sources.{name}]\nkind = "http_json"\ndataset = "products"\n'
        f'url = "http://{mock_address}:{MOCK_PORT}/products"\npage_size = 100\n'
        f'fields = {{ product_id = "id", name = "title" }}\n\n' for name in plan.source_names)
