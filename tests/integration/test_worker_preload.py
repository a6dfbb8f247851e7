"""The worker's parent process holds the job code, so each forked work horse does not import it again."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_loading_the_worker_class_loads_the_job_code_without_connecting() -> None:
    check = ("import gc, sys, ingest_workers.runtime.worker as w, ingest_workers.runtime.resources as r; "
             "assert 'ingest_workers.runtime.jobs' in sys.modules and 'ingest_workers.pipeline' in sys.modules; "
             "assert not [o for o in gc.get_objects() if isinstance(o, r.Resources)], "
             "'the parent must not build clients'")
    subprocess.run([sys.executable, "-c", check], check=True, env={"PATH": ""})
