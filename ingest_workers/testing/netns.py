"""Test hosts on one Linux machine: network namespaces joined by a bridge of their own (root only).

The bridge lives in a namespace of its own too ("the switch"), so nothing is added to the
machine's own network: traffic flows only between these namespaces, on a private subnet.
Every name carries a prefix with the creator's pid, so two labs (a developer's and CI's)
never collide. :meth:`Lab.close` kills every process left in each namespace (found with
``ip netns pids``, signalled by pid) and deletes the namespaces; it is safe to call twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "/sbin/ip"


@dataclass(frozen=True)
class Host:
    name: str  # also its hostname (``worker1``): RQ worker names start with it
    namespace: str
    address: str
    link: str  # the switch's end of its cable: down = the host is cut off


def ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Lab:
    """``Lab(prefix, "10.231.0")``: hosts get ``10.231.0.N/24``; ``prefix`` (``h<pid>``) starts every name."""

    def __init__(self, prefix: str, subnet: str) -> None:
        self.prefix, self.subnet = prefix, subnet
        self.switch = f"{prefix}sw"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []

    def open(self) -> Lab:
        self._add_namespace(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        return self

    def attach(self, name: str, octet: int) -> Host:
        """The host ``add_host(name, octet)`` makes, for a process that did not make it (same names)."""
        host = self.hosts[name] = Host(name, f"{self.prefix}{name}", f"{self.subnet}.{octet}", f"{self.prefix}{octet}p")
        return host

    def add_host(self, name: str, octet: int) -> Host:
        host = self.attach(name, octet)
        self._add_namespace(host.namespace)
        inside = f"{self.prefix}{octet}"
        ip("link", "add", inside, "netns", host.namespace, "type", "veth", "peer", "name", host.link,
           "netns", self.switch)
        ip("-n", self.switch, "link", "set", host.link, "master", "br0", "up")
        ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inside)
        ip("-n", host.namespace, "link", "set", inside, "up")
        ip("-n", host.namespace, "link", "set", "lo", "up")
        return host

    def run(self, host: Host, argv: Sequence[str], env: Mapping[str, str], log: IO[bytes] | None = None,
            user: str | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` on ``host`` with exactly ``env``; its output goes to ``log`` (None: nowhere)."""
        return subprocess.Popen(self.command(host, argv, user), env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def command(self, host: Host, argv: Sequence[str], user: str | None = None) -> list[str]:
        """``argv`` run on ``host``, with the host's name as its hostname (and as ``user``)."""
        prefix = [IP, "netns", "exec", host.namespace, "/usr/bin/unshare", "--uts", "/bin/sh", "-c",
                  'hostname "$0" && exec "$@"', host.name]
        if user:
            prefix += ["/usr/sbin/runuser", "-u", user, "--"]
        return [*prefix, *argv]

    def cut(self, host: Host) -> None:
        """Pull the host's cable at the switch: its processes run on, and reach nothing."""
        ip("-n", self.switch, "link", "set", host.link, "down")

    def restore(self, host: Host) -> None:
        ip("-n", self.switch, "link", "set", host.link, "up")

    def pids(self, namespace: str) -> list[int]:
        found = subprocess.run([IP, "netns", "pids", namespace], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def kill_all(self, host: Host) -> int:
        """SIGKILL every process of ``host``; return how many there were."""
        return self._kill_namespace(host.namespace)

    def close(self) -> None:
        for namespace in reversed(self._namespaces):
            self._kill_namespace(namespace)
            subprocess.run([IP, "netns", "del", namespace], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._namespaces.clear()

    def _add_namespace(self, namespace: str) -> None:
        ip("netns", "add", namespace)
        self._namespaces.append(namespace)

    def _kill_namespace(self, namespace: str) -> int:
        killed: set[int] = set()
        for _ in range(50):  # a dying supervisor may start one more child: look again until none is left
            pids = [pid for pid in self.pids(namespace) if pid != os.getpid()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        return len(killed)
