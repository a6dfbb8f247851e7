"""``python -m ingest_workers.testing.hosts`` (see scripts/hosts)."""

import sys

from .command import main

sys.exit(main())
