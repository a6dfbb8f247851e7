"""OAuth2 against a real token endpoint with short-lived tokens and an API that refuses expired
ones (tests/oauth_fixture.py): the grants, the token kept until shortly before it expires, a 401
renewed once, refused grants in one sentence, and secrets only where they belong."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from ingest_workers.core.errors import ConfigError, PermanentError, Unauthorized
from ingest_workers.core.models import SourceSpec
from ingest_workers.core.redact import Redactor, hiding
from ingest_workers.sources import SourceContext
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.sources.http_json import HttpJsonSource
from ingest_workers.sources.oauth2 import renewal_margin
from tests.oauth_fixture import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, SCOPE, OAuthFixture, contact

ENV = {"CRM_CLIENT_ID": CLIENT_ID, "CRM_CLIENT_SECRET": CLIENT_SECRET, "CRM_REFRESH_TOKEN": REFRESH_TOKEN}


@pytest.fixture
def oauth() -> Iterator[OAuthFixture]:
    fixture = OAuthFixture()
    yield fixture
    fixture.close()


def spec(oauth: OAuthFixture, grant: str = "client_credentials", **auth: Any) -> SourceSpec:
    table = {"kind": f"oauth2_{grant}", "token_url": oauth.token_url, "client_id_env": "CRM_CLIENT_ID",
             "client_secret_env": "CRM_CLIENT_SECRET", "scope": SCOPE, **auth}
    if grant == "refresh_token":
        table.setdefault("refresh_token_env", "CRM_REFRESH_TOKEN")
    return SourceSpec(name="crm_contacts", kind="http_json", dataset="posts", url=oauth.api_url, page_size=10,
                      auth=table)


def stream(source_spec: SourceSpec, env: dict[str, str] | None = None, concurrency: int = 1) -> list[Any]:
    client = HttpClient(make_session(), (2, 5), RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05))
    context = SourceContext(client, ENV if env is None else env, fetch_concurrency=concurrency)
    return list(HttpJsonSource(source_spec, context).stream())


def test_client_credentials_one_token_for_every_page_basic_client_auth_and_secrets_where_they_belong(
        oauth: OAuthFixture) -> None:
    state = oauth.state
    with hiding(Redactor()) as redactor:  # as a worker runs a job
        assert stream(spec(oauth), concurrency=3) == [contact(i) for i in range(state.contacts)]
    assert len(state.token_requests) == 1 and state.unauthorized == 0
    headers, form = state.token_requests[0]
    assert form == {"grant_type": "client_credentials", "scope": SCOPE}  # the secret is not in the form ...
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    [token] = state.issued
    assert {h["Authorization"] for _, h in state.api_requests} == {f"Bearer {token}"}  # ... the token, only here
    sent_to_api = repr(state.api_requests)
    assert CLIENT_SECRET not in sent_to_api and CLIENT_ID not in sent_to_api
    assert token not in repr(state.token_requests)
    assert redactor.redact(f"a message quoting {token}") == "a message quoting ${OAUTH2_ACCESS_TOKEN}"


def test_refresh_token_grant_with_the_client_in_the_body_and_a_rotated_refresh_token(oauth: OAuthFixture) -> None:
    state = oauth.state
    state.rotate_refresh_token, state.lifetime, state.page_delay = True, 0.5, 0.2
    assert stream(spec(oauth, "refresh_token", client_auth="body")) == [contact(i) for i in range(state.contacts)]
    forms = [form for _, form in state.token_requests]
    assert len(forms) >= 2 and state.unauthorized == 0
    assert forms[0] == {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN, "scope": SCOPE,
                        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    assert forms[1]["refresh_token"] == "planted-rotated-1"  # the one the endpoint rotated to
    assert all("Authorization" not in headers for headers, _ in state.token_requests)


def test_a_short_lived_token_is_renewed_before_it_expires_never_after(oauth: OAuthFixture) -> None:
    state = oauth.state
    state.lifetime, state.page_delay = 1.0, 0.3  # 5 pages of 0.3 s: the token outlives about three
    assert stream(spec(oauth)) == [contact(i) for i in range(state.contacts)]
    assert state.unauthorized == 0  # renewed at 0.9 s (the margin), before the API refused it
    assert 2 <= len(state.token_requests) < len(state.api_requests)
    assert renewal_margin(1.0) == pytest.approx(0.1) and renewal_margin(7200) == 60


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_401_gets_a_new_token_once_and_repeats_the_request(oauth: OAuthFixture, concurrency: int) -> None:
    state = oauth.state
    client = HttpClient(make_session(), (2, 5), RetryPolicy(max_attempts=1))
    records = HttpJsonSource(spec(oauth), SourceContext(client, ENV, fetch_concurrency=concurrency)).stream()
    first_page = [next(records) for _ in range(10)]
    state.revoke_all()  # the API now refuses the token the job holds, long before its expires_in
    assert first_page + list(records) == [contact(i) for i in range(state.contacts)]
    # One new token, whatever number of fetch threads met the 401 (each repeats its request once).
    assert len(state.token_requests) == 2
    assert state.unauthorized == 1 if concurrency == 1 else 1 <= state.unauthorized <= concurrency


def test_a_second_401_after_a_new_token_fails_the_job(oauth: OAuthFixture) -> None:
    oauth.state.lifetime = -1  # every token is refused by the API
    with pytest.raises(Unauthorized, match="HTTP 401"):
        stream(spec(oauth))
    assert (len(oauth.state.token_requests), oauth.state.unauthorized) == (2, 2)


def test_token_endpoint_5xx_is_retried_like_any_request(oauth: OAuthFixture) -> None:
    oauth.state.fail_next_token_requests = 2
    assert len(stream(spec(oauth))) == oauth.state.contacts
    assert len(oauth.state.token_requests) == 3


@pytest.mark.parametrize(("grant", "env", "said", "variables"), [
    ("client_credentials", {**ENV, "CRM_CLIENT_SECRET": "planted-wrong-secret"}, "invalid_client",
     "CRM_CLIENT_ID and CRM_CLIENT_SECRET"),
    ("refresh_token", {**ENV, "CRM_REFRESH_TOKEN": "planted-stale-refresh"}, "invalid_grant",
     "CRM_CLIENT_ID, CRM_CLIENT_SECRET and CRM_REFRESH_TOKEN"),
])
def test_a_refused_grant_fails_in_one_sentence_naming_the_token_url_and_the_variables(
        oauth: OAuthFixture, grant: str, env: dict[str, str], said: str, variables: str) -> None:
    with pytest.raises(PermanentError) as caught:
        stream(spec(oauth, grant), env)
    message = str(caught.value)
    assert message == (f"source crm_contacts: the token endpoint {oauth.token_url} refused the {grant} grant "
                       f"({said}); check {variables}")
    assert not any(secret in message for secret in env.values())
    assert oauth.state.api_requests == []  # nothing was asked of the API without a token


def test_a_missing_variable_fails_before_any_request(oauth: OAuthFixture) -> None:
    with pytest.raises(ConfigError, match=r"CRM_CLIENT_SECRET \(auth.client_secret_env\) is not set"):
        stream(spec(oauth), {"CRM_CLIENT_ID": CLIENT_ID})
    assert oauth.state.token_requests == []
