"""docker/docker-compose.yml, validated by Debian's docker-compose (it parses without an engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "docker-compose.yml"
INGEST_ROLES = {"migrate", "mock-sources", "worker", "scheduler", "metrics-server"}


def resolved() -> dict:
    assert shutil.which("docker-compose"), "docker-compose is missing: scripts/test installs Debian's package"
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_every_role_is_there_and_shares_one_redis_and_postgres() -> None:
    services = resolved()["services"]
    assert set(services) >= {"redis", "postgres", *INGEST_ROLES, "prometheus", "grafana"}
    envs = [services[role]["environment"] for role in INGEST_ROLES]
    assert all(env["REDIS_URL"] == envs[0]["REDIS_URL"] for env in envs)
    assert all(env["DATABASE_URL"] == envs[0]["DATABASE_URL"] for env in envs)
    assert urlsplit(envs[0]["REDIS_URL"]).hostname == "redis"
    assert urlsplit(envs[0]["DATABASE_URL"]).hostname == "postgres"
    postgres_env = services["postgres"]["environment"]
    database = urlsplit(envs[0]["DATABASE_URL"])
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_PASSWORD"], postgres_env["POSTGRES_DB"])


def test_one_image_for_every_ingest_role() -> None:
    services = resolved()["services"]
    assert {services[role]["image"] for role in INGEST_ROLES} == {"ingest-workers:latest"}
    assert all(services[role]["build"]["dockerfile"] == "docker/Dockerfile" for role in INGEST_ROLES)


def test_health_checks_and_start_order() -> None:
    services = resolved()["services"]
    for role in ("redis", "postgres", "metrics-server"):
        assert services[role]["healthcheck"]["test"], role
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for role in ("worker", "scheduler", "metrics-server"):  # from an empty database, nothing runs before the schema
        assert services[role]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", role
    assert services["migrate"]["restart"] == "no"


def test_workers_can_be_scaled() -> None:
    worker = resolved()["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # both would clash at --scale worker=8


def test_the_dockerfile_runs_as_a_non_root_user_with_a_dependency_layer() -> None:
    lines = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    assert lines[[i for i, line in enumerate(lines) if line.startswith("FROM")][0]].startswith("FROM python:3.11-slim")
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] != "USER root"
    copies = [line for line in lines if line.startswith("COPY ")]
    assert copies[0].startswith("COPY setup.cfg") and copies[-1].startswith("COPY ingest_workers")


def test_prometheus_scrapes_the_metrics_server_and_grafana_gets_its_files() -> None:
    services = resolved()["services"]
    config = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    [target] = config["scrape_configs"][0]["static_configs"][0]["targets"]
    port = services["metrics-server"]["command"][services["metrics-server"]["command"].index("--port") + 1]
    assert target == f"metrics-server:{port}"
    mounted = [volume.split(":")[0] for volume in services["prometheus"]["volumes"] + services["grafana"]["volumes"]]
    assert mounted and all(Path(path).exists() for path in mounted)
    assert any(path.endswith("alerts.yml") for path in mounted)
