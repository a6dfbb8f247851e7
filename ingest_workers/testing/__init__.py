"""Demo and test tooling, kept apart from what runs in production.

- ``mock_sources/`` and :mod:`.mock_faults`: a local source server with deterministic feeds and faults.
- ``demo_catalog.toml``: the catalog of the demo (every mock feed; never a default for production).
- :mod:`.devservices`: Redis and PostgreSQL for machines that have neither (embedded wheels).
- :mod:`.chaos`, :mod:`.fleet`, :mod:`.tcpproxy`: the chaos run, its killable workers and cuttable link.
- ``hosts/`` and :mod:`.netns`: several hosts on one machine (network namespaces, root only).
- :mod:`.verdict`: the per-key verdict both runs give (loaded once, rejected, lost, duplicated).
- :mod:`.faultdemo` and :mod:`.narrate`: the resilience demo, told in plain words.

Nothing in the package imports this but ``cli`` (an import contract in ``setup.cfg`` says so).
Users' own tests may use the mock server and the embedded services.
"""

from pathlib import Path

DEMO_CATALOG = Path(__file__).with_name("demo_catalog.toml")
