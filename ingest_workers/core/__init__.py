"""The vocabulary every layer shares, importing nothing else of the package.

- :mod:`.errors`: the one exception tree (transient, permanent, config, service).
- :mod:`.models`: plain data passed between the layers (a source's spec, records, counts).
- :mod:`.config`: :class:`Settings`, built once from flags > environment > the catalog's [settings].
- :mod:`.redact`: keep passwords out of anything a person or a metric system sees.
- :mod:`.plugins`: turn the names a catalog uses into classes (built-ins or ``package.module:Class``).
- :mod:`.connections`: open Redis and PostgreSQL, and translate their errors at the boundary.

May import: the standard library and third-party clients only.
"""
