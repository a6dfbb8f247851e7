"""The vocabulary every layer shares, importing nothing else of the package.

- :mod:`.errors`: the one exception tree (transient, permanent, config, service).
- :mod:`.models`: plain data passed between the layers (a source's spec, records, counts).
- :mod:`.config`: :class:`Settings`, built once from flags > environment > the catalog's [settings].
- :mod:`.redact`: keep passwords, and the values of a job's environment references, out of anything a
  person or a metric system sees.
- :mod:`.envrefs`: ``${VAR}`` references and ``*_env`` names, kept in the job and resolved by its worker.
- :mod:`.permissions`: the plugins, local files and variables a worker lets a job use.
- :mod:`.plugins`: turn the names a catalog uses into classes (built-ins or ``package.module:Class``).
- :mod:`.connections`: open Redis and PostgreSQL, and translate their errors at the boundary.

May import: the standard library and third-party clients only.
"""
