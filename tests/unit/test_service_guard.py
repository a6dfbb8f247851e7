"""tests/service_guard.py: a test without the integration marker cannot use a service or start a process."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.service_guard import ServiceGuard, UnmarkedServiceUse, service_address

SERVICES = [service_address("redis://127.0.0.1:6379/4"), service_address("postgresql://postgres@127.0.0.1:5432/x")]


def test_the_addresses_come_from_both_kinds_of_url() -> None:
    assert SERVICES == [("127.0.0.1", 6379), ("127.0.0.1", 5432)]
    assert service_address("host=db port=6543 dbname=x") == ("db", 6543)


def test_a_process_started_while_watching_is_refused_and_remembered() -> None:
    guard = ServiceGuard(SERVICES)
    guard.watch()
    with pytest.raises(UnmarkedServiceUse, match="pytestmark = pytest.mark.integration"):
        guard.audit("subprocess.Popen", ("/bin/true", ["/bin/true"], None, None))
    assert guard.take() == ["started a process (subprocess.Popen: /bin/true)"]
    assert guard.take() == []


def test_only_a_connection_to_a_test_service_is_refused() -> None:
    guard = ServiceGuard(SERVICES)
    guard.watch()
    guard.audit("socket.connect", (None, ("127.0.0.1", 8080)))  # a mock source: allowed
    guard.audit("socket.connect", (None, "/run/some.sock"))
    with pytest.raises(UnmarkedServiceUse):
        guard.audit("socket.connect", (None, ("localhost", 5432)))
    assert guard.take() == ["connected to a test service at localhost:5432"]


def test_nothing_is_refused_before_watching_or_after_stopping() -> None:
    guard = ServiceGuard(SERVICES)
    guard.audit("os.system", (b"true",))
    guard.watch()
    guard.stop()
    guard.audit("socket.connect", (None, ("127.0.0.1", 6379)))
    assert guard.take() == []


def test_a_thread_left_by_an_earlier_test_is_not_counted_one_started_by_this_test_is() -> None:
    guard = ServiceGuard(SERVICES)
    go = threading.Event()
    errors: dict[str, BaseException | None] = {}

    def connect(name: str) -> None:
        go.wait(10)
        try:
            guard.audit("socket.connect", (None, ("127.0.0.1", 6379)))
            errors[name] = None
        except UnmarkedServiceUse as exc:
            errors[name] = exc

    earlier = threading.Thread(target=connect, args=("earlier",))
    earlier.start()
    guard.watch()
    own = threading.Thread(target=connect, args=("own",))
    own.start()
    go.set()
    earlier.join(10)
    own.join(10)
    assert errors["earlier"] is None
    assert isinstance(errors["own"], UnmarkedServiceUse)


def test_an_unmarked_test_requesting_the_services_fails_naming_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    integration: services\n")
    pytester.makeconftest("""
import pytest

pytest_plugins = ("tests.service_guard",)


@pytest.fixture(scope="session")
def services():
    return "not a real service"


@pytest.fixture
def settings(services):
    return services
""")
    pytester.makepyfile(test_uses_services="""
import pytest


def test_unmarked(settings):
    pass


@pytest.mark.integration
def test_marked(settings):
    pass


def test_without_services():
    pass
""")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_unmarked uses Redis/PostgreSQL (the `services` fixture, through the "
                                 "fixtures it requests: settings) but has no integration marker: add `pytestmark*"])


def test_a_connection_the_test_code_caught_still_fails_the_test(pytester: pytest.Pytester,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # stands for the test Redis
    monkeypatch.setenv("GUARD_TEST_PORT", str(listener.getsockname()[1]))
    pytester.makeini("[pytest]\nmarkers =\n    integration: services\n")
    pytester.makeconftest("""
import os

pytest_plugins = ("tests.service_guard",)


def pytest_configure(config):
    from tests import service_guard

    port = os.environ["GUARD_TEST_PORT"]
    service_guard.install(config, f"redis://127.0.0.1:{port}/0", "postgresql://postgres@127.0.0.1:4/none")
""")
    pytester.makepyfile(test_connects="""
import os
import socket


def test_swallows_the_error():
    try:
        socket.create_connection(("127.0.0.1", int(os.environ["GUARD_TEST_PORT"])), timeout=5).close()
    except Exception:
        pass
""")
    try:
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider",
                                              "-W", "ignore::pytest.PytestAssertRewriteWarning")
    finally:
        listener.close()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_swallows_the_error has no integration marker but connected to a test "
                                 "service at 127.0.0.1:*"])
