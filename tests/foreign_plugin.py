"""A plugin no test worker allows: importing it leaves a mark (FOREIGN_PLUGIN_MARKER), so a test
can tell that a refused job never imported it."""

import os
from pathlib import Path

Path(os.environ["FOREIGN_PLUGIN_MARKER"]).touch()


class Source:
    def __init__(self, spec: object, context: object) -> None:
        pass

    def stream(self) -> list[dict[str, object]]:
        return [{"id": 1, "userId": 1, "title": "from a foreign plugin"}]
