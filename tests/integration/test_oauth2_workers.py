"""OAuth2 with real forking `rq worker` processes (`ingest run --workers 2`): each job runs in a
child process of its own, so each job asks the token endpoint once, however many pages it reads
(never once per page); the tokens, the client secret and the refresh token reach neither Redis
nor the run's output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.testing.devservices import Services
from tests.helpers import redis_contents, scalar
from tests.oauth_fixture import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, OAuthFixture, OAuthState

pytestmark = pytest.mark.integration
ENV = {"CRM_CLIENT_ID": CLIENT_ID, "CRM_CLIENT_SECRET": CLIENT_SECRET, "CRM_REFRESH_TOKEN": REFRESH_TOKEN,
       "INGEST_JOB_RETRIES": "0"}
CATALOG = """
[sources.crm_contacts]
kind = "http_json"
dataset = "posts"
url = "{api}"
page_size = 10
concurrency = 2
fields = {{ post_id = "id", user_id = "userId" }}
auth = {{ kind = "oauth2_client_credentials", token_url = "{token}", client_id_env = "CRM_CLIENT_ID", client_secret_env = "CRM_CLIENT_SECRET", scope = "contacts.read" }}

[sources.crm_contacts_refreshed]
kind = "http_json"
dataset = "posts"
url = "{api}"
page_size = 10
pagination = "offset"
fields = {{ post_id = "id", user_id = "userId" }}
auth = {{ kind = "oauth2_refresh_token", token_url = "{token}", client_id_env = "CRM_CLIENT_ID", client_secret_env = "CRM_CLIENT_SECRET", refresh_token_env = "CRM_REFRESH_TOKEN", client_auth = "body" }}
"""  # noqa: E501 (TOML inline tables are one line)


@pytest.fixture
def oauth() -> Iterator[OAuthFixture]:
    fixture = OAuthFixture(OAuthState(contacts=95))
    yield fixture
    fixture.close()


def run(services: Services, catalog: Path, tmp_path: Path) -> str:
    flags = ["--redis-url", services.redis_url, "--database-url", services.database_url, "--log-level", "INFO",
             "--catalog", str(catalog), "run", "--sources", "all", "--workers", "2", "--timeout", "120",
             "--out", str(tmp_path / "summary.json")]
    result = CliRunner().invoke(main, flags, env=ENV)
    assert result.exit_code == 0, result.output
    return result.output


def test_each_job_asks_for_one_token_whatever_its_pages(services: Services, redis_client: redis.Redis,
                                                        pg: psycopg2.extensions.connection, oauth: OAuthFixture,
                                                        tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG.format(api=oauth.api_url, token=oauth.token_url))
    state = oauth.state
    outputs = [run(services, catalog, tmp_path) for _ in range(2)]  # two runs: four jobs

    pages_per_job = state.contacts // 10 + 1  # the last one short
    # (concurrent fetching may also ask for a page past the short last one)
    assert len(state.api_requests) >= 4 * pages_per_job and state.unauthorized == 0
    assert len(state.token_requests) == 4  # one per job (each in its own work horse), not one per page
    assert sorted(form["grant_type"] for _, form in state.token_requests) == ["client_credentials"] * 2 + [
        "refresh_token"] * 2
    for source in ("crm_contacts", "crm_contacts_refreshed"):
        assert scalar(pg, "SELECT count(DISTINCT post_id) FROM posts WHERE source = %s", source) == state.contacts
    seen = redis_contents(redis_client).decode("utf-8", "replace") + "".join(outputs)
    seen += (tmp_path / "summary.json").read_text() + (tmp_path / "workers.log").read_text()
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, *state.issued):
        assert secret not in seen
