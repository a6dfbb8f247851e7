from pathlib import Path

import pytest

from ingest_workers.catalog import load_catalog
from ingest_workers.core.errors import ConfigError
from ingest_workers.core.models import SourceSpec
from ingest_workers.datasets import BUILTIN
from ingest_workers.testing import DEMO_CATALOG
from tests.helpers import resolved


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
[settings]
batch_size = 10

[sources.shop_a]
kind = "http_json"
dataset = "products"
url = "${SHOP_URL:-http://127.0.0.1:1}/products"
auth_env = "SHOP_TOKEN"

[sources.shop_b]
kind = "http_json"
dataset = "products"
url = "http://127.0.0.1:2/items"
fields = { product_id = "sku" }
"""


def test_the_readme_s_minimal_catalog_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("```toml\n# catalog.toml\n", 1)[1].split("```", 1)[0]
    [spec] = load_catalog(write(tmp_path, block), {}).sources.values()
    assert (spec.name, spec.dataset, spec.records_path, spec.fields["post_id"]) == ("blog_posts", "posts", "", "id")


def test_the_packaged_catalog_loads_and_covers_every_dataset() -> None:
    catalog = load_catalog(DEMO_CATALOG, {})
    assert list(catalog.sources) == ["shop_products", "shop_b_catalog", "shop_c_products", "market_quotes",
                                     "twitter_mentions", "telegram_mentions", "placeholder_posts", "sensor_csv",
                                     "sensor_synthetic"]
    # References stay as written (the worker expands them): the job in Redis carries no value.
    assert catalog.sources["shop_products"].url == "${INGEST_MOCK_URL:-http://127.0.0.1:8765}/products"
    assert resolved(catalog.sources["shop_products"], {}).url == "http://127.0.0.1:8765/products"
    assert catalog.sources["shop_products"].interval_seconds == 300
    assert {s.dataset for s in catalog.sources.values()} == set(BUILTIN)
    assert {s.pagination for s in catalog.sources.values() if s.kind == "http_json"} == \
        {"page", "offset", "cursor", "link"}
    assert resolved(catalog.sources["sensor_synthetic"], {}).options["records"] == "2000"
    assert resolved(catalog.sources["sensor_synthetic"], {"INGEST_SYNTHETIC_RECORDS": "7"}).options["records"] == "7"


def test_environment_references_expand_with_defaults(tmp_path: Path) -> None:
    spec = load_catalog(write(tmp_path, GOOD), {"SHOP_URL": "http://h:9"}).sources["shop_a"]
    assert spec.url == "${SHOP_URL:-http://127.0.0.1:1}/products"  # for the worker to expand
    assert resolved(spec, {}).url == "http://127.0.0.1:1/products"
    assert resolved(spec, {"SHOP_URL": "http://h:9"}).url == "http://h:9/products"
    with pytest.raises(ConfigError, match="shop_a key 'constants.platform': environment variable NOPE is not set"):
        resolved(SourceSpec(**{**spec.to_dict(), "constants": {"platform": "${NOPE}"}}), {})


def test_the_keys_that_route_and_check_a_job_expand_when_the_catalog_loads(tmp_path: Path) -> None:
    path = write(tmp_path, """
[sources.a]
kind = "${KIND}"
dataset = "${DATASET:-posts}"
queue = "ingest-${TIER}"
url = "https://api.example/posts?key=${API_KEY}"
stages = [{ name = "${STAGE}", maximum = 9.0 }]
sinks = [{ name = "${SINK}", url = "https://hooks.example/?token=${HOOK_TOKEN}" }]
""")
    env = {"KIND": "http_json", "TIER": "heavy", "STAGE": "threshold", "API_KEY": "k-123456", "SINK": "console",
           "HOOK_TOKEN": "t-987654"}
    spec = load_catalog(path, env).sources["a"]
    assert (spec.kind, spec.dataset, spec.queue) == ("http_json", "posts", "ingest-heavy")
    assert spec.stages == [{"name": "threshold", "maximum": 9.0}]
    assert spec.url == "https://api.example/posts?key=${API_KEY}"
    assert spec.sinks == [{"name": "console", "url": "https://hooks.example/?token=${HOOK_TOKEN}"}]


def test_select_all_and_by_name(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, GOOD), {})
    assert [s.name for s in catalog.select("all")] == ["shop_a", "shop_b"]
    assert [s.name for s in catalog.select("shop_b, shop_a,shop_b")] == ["shop_b", "shop_a"]
    assert catalog.settings == {"batch_size": 10}
    assert catalog.sources["shop_b"].fields == {"product_id": "sku"}
    assert catalog.sources["shop_b"].interval_seconds is None  # not scheduled


def test_unknown_source_lists_the_known_ones(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, GOOD), {})
    with pytest.raises(ConfigError, match="unknown source nope; known sources: shop_a, shop_b"):
        catalog.select("shop_a,nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\n", r"\[sources.a\]: missing required key 'url'"),
        ("[sources.a]\nkind = 'ftp'\ndataset = 'products'\nurl = 'x'\n", "key 'kind': unknown source kind 'ftp'"),
        ("[sources.a]\nkind = 'nope.nothing:Cls'\ndataset = 'products'\nurl = 'x'\n", "cannot import nope.nothing"),
        ("[sources.a]\nkind = 'json:NoSuchClass'\ndataset = 'products'\nurl = 'x'\n", "json has no NoSuchClass"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\npagination = 'scroll'\n",
         "key 'pagination': unknown pagination 'scroll'; known: page, offset"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\ncursor_field = 'nope'\n",
         "key 'cursor_field': 'nope' is not a column of products"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\nstages = ['sparkle']\n",
         "key 'stages': unknown stage 'sparkle'"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\n"
         "stages = [{ name = 'moving_average', window = 0 }]\n", "key 'stages': stage moving_average: window"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\n"
         "stages = [{ name = 'threshold', colour = 1 }]\n", "key 'stages': stage threshold: .*colour"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\nsinks = ['kafka']\n",
         "key 'sinks': unknown sink 'kafka'"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\noptions = 3\n",
         "key 'options': expected a table"),
        ("[sources.a]\nkind = 'synthetic'\ndataset = 'sensors'\noptions = { start = 2026-01-01T00:00:00Z }\n",
         "cannot travel as JSON"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'cars'\nurl = 'x'\n",
         r"key 'dataset': unknown dataset 'cars'; declare it as \[datasets.cars\]"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\npage_size = 0\n", "key 'page_size'"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\ncolour = 1\n", "unknown key 'colour'"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\nconcurrency = 0\n",
         "key 'concurrency': expected a whole number of requests, 1 or more"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\nconcurrency = '4'\n",
         "key 'concurrency': expected a whole number"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\npagination = 'cursor'\nconcurrency = 4\n",
         "key 'concurrency': only page and offset pagination fetch pages concurrently"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\ninterval_seconds = '5m'\n",
         "key 'interval_seconds': expected a whole number of seconds"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\nschedule = '0 3 * *'\n",
         "key 'schedule': expected a cron expression of five fields"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\nschedule = '0 25 * * *'\n",
         "key 'schedule': not a valid cron expression"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\nschedule = '0 3 * * *'\n"
         "interval_seconds = 60\n", "give 'schedule' \\(cron, UTC\\) or 'interval_seconds', not both"),
        ("[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\nerror_path = 1\n",
         "key 'error_path': expected text"),
        ("[sources.Bad-Name]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\n", "a source name must be"),
        ("[sources.a]\nkind = '${NOPE}'\ndataset = 'products'\nurl = 'x'\n",
         "'kind': environment variable NOPE is not set"),
        ("[source.a]\n", "unknown top-level key 'source'"),
        ("[settings]\n", "no \\[sources.NAME\\] tables"),
        ("this is = not toml =", "is not valid TOML"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_catalog(path, {})
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalog(tmp_path / "none.toml", {})


PLUGIN = """
[sources.mine]
kind = "tests.plugins:CountingSource"
dataset = "posts"
stages = ["tests.plugins:ShoutTitles", { name = "tests.plugins:ShoutTitles", suffix = "?" }]
sinks = [{ name = "tests.plugins:RememberSink" }]
"""


def test_plugins_are_named_by_dotted_path(tmp_path: Path) -> None:
    spec = load_catalog(write(tmp_path, PLUGIN), {}).sources["mine"]
    assert spec.kind == "tests.plugins:CountingSource" and spec.url == ""
    assert spec.stages[1] == {"name": "tests.plugins:ShoutTitles", "suffix": "?"}


def test_concurrency_is_per_source_and_absent_means_the_settings_default(tmp_path: Path) -> None:
    path = write(tmp_path, "[sources.a]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\n"
                           "pagination = 'offset'\nconcurrency = 8\n"
                           "[sources.b]\nkind = 'http_json'\ndataset = 'products'\nurl = 'x'\n")
    sources = load_catalog(path, {}).sources
    assert (sources["a"].concurrency, sources["b"].concurrency) == (8, None)


DATASETS = """
[datasets.customers]
key = ["customer_id"]
write = "merge"
version_column = "updated_at"
[datasets.customers.columns]
customer_id = "text"
email = { type = "text", required = true, max_length = 320 }
updated_at = "timestamp"

[sources.billing_customers]
kind = "http_json"
dataset = "customers"
url = "http://127.0.0.1:1/customers"
fields = { customer_id = "id", updated_at = "updated" }
cursor_field = "updated_at"

[sources.old_style]
kind = "http_json"
domain = "customers"  # alias: a catalog written before the rename still loads
url = "http://127.0.0.1:1/customers"
"""


def test_a_declared_dataset_travels_with_its_sources(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, DATASETS), {})
    assert list(catalog.datasets) == ["customers"] and catalog.datasets["customers"].table == "customers"
    for spec in catalog.sources.values():
        assert spec.dataset == "customers"
        assert spec.declaration == catalog.datasets["customers"].to_dict()  # in the job: no catalog needed
    assert set(catalog.used_datasets()) == {"customers"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('dataset = "customers"', 'dataset = "customers"\ndomain = "customers"'),  # alias: both given
         "give 'dataset' or 'domain' (its older name), not both"),  # alias
        (('dataset = "customers"', 'dataset = "clients"'),
         "key 'dataset': unknown dataset 'clients'; declare it as [datasets.clients]"),
        (("[datasets.customers]", "[datasets.products]"), "'products' is a built-in dataset"),
        (('cursor_field = "updated_at"', 'cursor_field = "email_x"'), "'email_x' is not a column of customers"),
        (("write = \"merge\"\n", 'write = "merge"\ntable = "posts"\n'), "table 'posts' is dataset 'posts''s already"),
        (('email = { type = "text", required = true, max_length = 320 }', 'email = { type = "text", max = 3 }'),
         "[datasets.customers.columns] key 'email' 'max': expected a number, on an integer, numeric or money"),
    ],
)
def test_dataset_errors_name_the_file_the_dataset_and_the_key(tmp_path: Path, change: tuple[str, str],
                                                             message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_catalog(write(tmp_path, DATASETS.replace(*change, 1)), {})
    assert message in str(caught.value) and str(tmp_path / "catalog.toml") in str(caught.value)


def test_a_catalog_written_with_the_older_key_still_loads(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, DATASETS), {})
    assert catalog.sources["old_style"].dataset == "customers"
    assert catalog.sources["old_style"].declaration == catalog.sources["billing_customers"].declaration
    old = DATASETS.replace('domain = "customers"', 'domain = "clients"')  # alias: errors name the key as written
    with pytest.raises(ConfigError, match=r"\[sources.old_style\] key 'domain': unknown dataset 'clients'"):  # alias
        load_catalog(write(tmp_path, old), {})


def test_a_job_enqueued_before_the_rename_still_reads(tmp_path: Path) -> None:
    from ingest_workers.core.models import SourceSpec

    spec = load_catalog(write(tmp_path, GOOD), {}).sources["shop_a"]
    queued = {**spec.to_dict()}
    queued["domain"] = queued.pop("dataset")  # alias: the key a job of the previous version carries
    assert SourceSpec.from_dict(queued) == spec
    with pytest.raises(ValueError, match="not both"):
        SourceSpec.from_dict({**spec.to_dict(), "domain": "posts"})  # alias: both given


def test_a_job_for_a_built_in_dataset_is_the_job_earlier_workers_read(tmp_path: Path) -> None:
    from ingest_workers.core.models import SourceSpec

    spec = load_catalog(write(tmp_path, GOOD), {}).sources["shop_a"]
    assert "declaration" not in spec.to_dict()  # a worker of the previous version can still build its SourceSpec
    assert SourceSpec.from_dict(spec.to_dict()) == spec
    declared = load_catalog(write(tmp_path, DATASETS), {}).sources["billing_customers"]
    assert SourceSpec.from_dict(declared.to_dict()) == declared
