"""``python -m ingest_workers.testing.hosts [--worker-hosts 3 ...]`` as root (see scripts/hosts):
in the root namespace it builds the lab; with ``--inside`` (on the producer host) it runs the
scenario and prints the verdict line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..netns import Lab
from .lab import run_lab
from .plan import SUBNET, HostsPlan
from .scenario import Scenario


def parse_plan(argv: list[str] | None) -> tuple[HostsPlan, argparse.Namespace]:
    """The plan and the other options (``--log-dir``, ``--inside``) from the command line."""
    parser = argparse.ArgumentParser(prog="hosts", description="Several hosts on one machine (root only): "
                                     "workers on hosts that fail independently, and proof that nothing was lost "
                                     "or loaded twice.")
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
    return plan, args


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 when the verdict passes, 1 when it fails, 2 when the lab cannot be built."""
    plan, args = parse_plan(argv)

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
