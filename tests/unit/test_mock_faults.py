"""Each fault knob of the mock source, seen through the real HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.core.errors import TransientError, UnreadableBody
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.testing.mock_faults import FaultConfig, FaultInjector
from ingest_workers.testing.mock_sources import MockConfig, MockServer


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    server = MockServer("127.0.0.1", 0, MockConfig(records=50))
    server.start_in_thread()
    yield server
    server.shutdown()
    server.server_close()


def fetch(server: MockServer, faults: FaultConfig, attempts: int = 1, sleeps: list[float] | None = None) -> object:
    """GET page 1 of 10 products with ``faults`` on; the client's back-off sleeps land in ``sleeps``."""
    server.faults = FaultInjector(faults)
    client = HttpClient(make_session(), (2, 2), RetryPolicy(max_attempts=attempts, initial_backoff=0.01,
                                                            max_backoff=5),
                        sleep=(sleeps if sleeps is not None else []).append, max_body_bytes=100_000)
    return client.get_json(f"{server.url}/products", params={"page": 1, "per_page": 10})


@pytest.mark.parametrize(("faults", "error", "match"), [
    (FaultConfig(error=1.0), TransientError, "HTTP 503"),
    (FaultConfig(throttle=1.0, retry_after=2), TransientError, "HTTP 429"),
    (FaultConfig(drop=1.0), TransientError, "GET .*/products: (ChunkedEncodingError|ConnectionError)"),
    (FaultConfig(malformed=1.0), UnreadableBody, "not JSON"),
    (FaultConfig(wrong_type=1.0), UnreadableBody, "content type 'text/html'"),
    (FaultConfig(oversize=1.0, oversize_bytes=200_000), UnreadableBody, "body of 2000[0-9]{2} bytes"),
], ids=["error", "throttle", "drop", "malformed", "wrong_type", "oversize"])
def test_each_fault_reaches_the_client_as_the_right_error(server: MockServer, faults: FaultConfig,
                                                           error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        fetch(server, faults)
    assert sum(server.faults.injected.values()) == 1


def test_throttle_sends_retry_after_and_the_client_waits_for_it(server: MockServer) -> None:
    sleeps: list[float] = []
    with pytest.raises(TransientError):
        fetch(server, FaultConfig(throttle=1.0, retry_after=3), attempts=2, sleeps=sleeps)
    assert sleeps == [3]


def test_latency_and_no_faults_serve_the_page(server: MockServer) -> None:
    body = fetch(server, FaultConfig(latency=0.01))
    assert isinstance(body, dict) and len(body["items"]) == 10


def test_rates_are_honoured_over_many_rolls() -> None:
    injector = FaultInjector(FaultConfig(error=0.2, throttle=0.1, malformed=0.05, seed=7))
    picks = [injector.pick() for _ in range(20_000)]
    assert abs(picks.count("error") / 20_000 - 0.2) < 0.02
    assert abs(picks.count("throttle") / 20_000 - 0.1) < 0.015
    assert abs(picks.count("malformed") / 20_000 - 0.05) < 0.01


def test_parse_reads_the_cli_flag_and_refuses_nonsense() -> None:
    assert FaultConfig.parse("error=0.2,throttle=0.1,retry_after=2,seed=3") == \
        FaultConfig(error=0.2, throttle=0.1, retry_after=2, seed=3)
    with pytest.raises(ValueError, match="unknown fault"):
        FaultConfig.parse("explode=1")
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultConfig.parse("error=0.8,throttle=0.5")


def test_the_mock_sources_command_refuses_a_bad_faults_flag() -> None:
    result = CliRunner().invoke(main, ["mock-sources", "--port", "0", "--faults", "error=2"])
    assert result.exit_code == 2 and "--faults" in result.output and "sum to at most 1" in result.output
