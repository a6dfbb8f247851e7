"""The dataset's table, checked against the declaration the job carries, once per process."""

from __future__ import annotations

from ..core.errors import PermanentError
from ..datasets import Dataset
from ..load.pgretry import PostgresRetry
from ..load.schema import differences
from .resources import Resources


def check_table(postgres: PostgresRetry, dataset: Dataset, res: Resources) -> None:
    """Fail the job (permanently: running it again cannot help) when the dataset's table (or the table
    of a dataset nested in it) is missing
    or differs from the declaration the job carries, saying how. A match is remembered in the
    process's resources, so later jobs of the same declaration skip the check."""
    declaration = repr(dataset.to_dict())
    if declaration in res.tables_matching:
        return
    differ = postgres.run(lambda conn: differences(conn, dataset.family))
    if differ:
        raise PermanentError("the table does not match the dataset; run `ingest db migrate` with the catalog "
                             "that declares it: " + "; ".join(differ))
    res.tables_matching.add(declaration)
