"""ingest-workers: fetch sources with RQ workers, deduplicate in Redis, load PostgreSQL exactly once."""

__version__ = "0.1.0"
__all__ = ["__version__"]
