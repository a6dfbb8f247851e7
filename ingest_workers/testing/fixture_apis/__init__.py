"""Fixture APIs for fan-out (child requests per parent) and nested lists: a GitHub-like and a
shop-like API served by one threaded server, for the tests, the chaos run and the benchmarks.

Serve it::

    server = FixtureApiServer(FixtureApiConfig(issues=100, products=40, latency=0.1,
                                               faults=FaultShares(error=0.1, throttle=0.1))).start()
    ...  # server.url, server.revision = 2, server.requests()
    server.stop()

or ``ingest fixture-api --port 0 --issues 100`` (prints its URL). Endpoints: ``server.py``.

Expectations come from pure functions of (index, revision), never from the server:

    github.issue(number, revision)         one issue as listed: number, title, state, user.login,
                                           labels [{id, name, color}], tags [str], updated_at
    github.issues(size, revision)          all issues of a fixture of ``size``
    github.labels_of / tags_of(number, revision)
    github.comments_of(number, revision)   an issue's comments ([] where they answer 404)
    github.comments_missing(number)        /issues/{number}/comments answers 404 (number % 11 == 0)
    github.labels_changed(number)          revision 2 changes its labels, tags and updated_at
    github.comments_changed(number)        revision 2 edits its first comment and adds two
    shop.product_summary(id), shop.products(size)   the list endpoint's {id, name}
    shop.product_detail(id, revision)      the detail object (None where it answers 404)
    shop.detail_missing(id)                /products/{id} answers 404 (id % 13 == 0)
    shop.reviews_of(id, revision), shop.reviews_changed(id)

Revision 3 and later serve exactly what revision 2 served (``revisions.settled``). Faults
(``FaultShares``): a share of paths (with query, chosen by a hash) answers 500 or 429 on its
first request under the current revision only; ``latency`` is slept on child requests only.
"""

from . import github, shop
from .revisions import settled
from .server import ISSUES_PATH, FixtureApiConfig, FixtureApiServer, link_header
from .traffic import FaultShares, RequestLog

__all__ = ["ISSUES_PATH", "FaultShares", "FixtureApiConfig", "FixtureApiServer", "RequestLog", "github",
           "link_header", "settled", "shop"]
