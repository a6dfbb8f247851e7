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

The parts, in the order they run:

* :mod:`.plan`: what to run (:class:`HostsPlan`), the lab's addresses and hosts;
* :mod:`.lab`: the namespaces and the services host, built in the root namespace;
* :mod:`.scenario`: on the producer host, the workers, the producer and the metrics server;
* :mod:`.disruption`: the cut, the kill and the restarts, watching for take-overs;
* :mod:`.probes`: what the scenario reads from Redis, PostgreSQL and the metrics endpoint;
* :mod:`.result`: the verdict, per key (:mod:`ingest_workers.testing.verdict`, shared with
  the chaos run), and what the rejoined host did (from RQ's per-attempt results, never a log);
* :mod:`.command`: ``python -m ingest_workers.testing.hosts``.
"""

from .command import main
from .plan import HostsPlan
from .result import HostsResult, Takeover

__all__ = ["HostsPlan", "HostsResult", "Takeover", "main"]
