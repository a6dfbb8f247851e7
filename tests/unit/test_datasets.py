from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from ingest_workers.core.errors import ConfigError
from ingest_workers.core.models import Lineage, Record, Reject, Rejected, SourceSpec
from ingest_workers.datasets import BUILTIN, parse_dataset, parse_price
from ingest_workers.load.copygen import copy_serialiser
from ingest_workers.stages.base import compose
from ingest_workers.stages.compiled import CompiledRecordPath
from ingest_workers.stages.registry import source_stages


@pytest.mark.parametrize(
    ("value", "amount", "currency"),
    [
        (12, Decimal("12"), None),
        (12.5, Decimal("12.5"), None),
        ("$1,299.00", Decimal("1299.00"), "USD"),
        ("12,50 EUR", Decimal("12.50"), "EUR"),
        ("€ 3.10", Decimal("3.10"), "EUR"),
        (" 7 ", Decimal("7"), None),
    ],
)
def test_prices_in_the_shapes_apis_serve(value: object, amount: Decimal, currency: str | None) -> None:
    assert parse_price(value) == (amount, currency)


@pytest.mark.parametrize("value", [None, True, "call us", float("nan"), float("inf"), [1], "NaN", "1.2.3", "--5"])
def test_unreadable_prices_are_rejected_with_a_reason(value: object) -> None:
    with pytest.raises(Reject, match="price"):
        parse_price(value)


check_product, check_quote = BUILTIN["products"].check, BUILTIN["quotes"].check
check_post, check_reading = BUILTIN["posts"].check, BUILTIN["sensors"].check

GOOD = {"product_id": "SKU-1", "name": "Lamp", "price": "$5.00", "category": "home", "in_stock": True,
        "updated_at": "2026-01-01T00:00:00Z"}


def test_a_good_product_is_normalised() -> None:
    row = check_product(GOOD)
    assert row == {"product_id": "SKU-1", "name": "Lamp", "price": Decimal("5.00"), "currency": "USD",
                   "category": ["home"], "in_stock": True, "updated_at": "2026-01-01T00:00:00+00:00"}


def test_a_price_in_another_currency_names_it_and_the_field_wins_over_the_text() -> None:
    assert check_product({**GOOD, "price": "12,50 EUR"})["currency"] == "EUR"
    assert check_product({**GOOD, "price": {"amount": 3, "currency": "GBP"}})["currency"] == "GBP"
    assert check_product({**GOOD, "price": "12,50 EUR", "currency": "CHF"})["currency"] == "CHF"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": -1}, "price: -1 is below the minimum 0"),
        ({"price": 1e12}, "price: 1000000000000.0 is above the maximum 9999999999.99"),
        ({"price": "1e999999"}, "price: 1E+999999 is above the maximum"),
        ({"price": None}, "price: required value missing"),
        ({"name": None}, "name: required value missing"),
        ({"name": "   "}, "name: required value missing"),
        ({"name": "a\x00b"}, "name: contains a NUL character"),
        ({"name": "x" * 1001}, "name: 1001 characters is above the maximum length 1000"),
        ({"name": "bad \ud800 surrogate"}, "name: not valid Unicode"),
        ({"product_id": 1.5}, "product_id: expected text, got float"),
        ({"in_stock": "yes"}, "in_stock: expected true or false"),
        ({"category": [1, 2]}, "category: expected text or a list of text"),
        ({"currency": "dollars"}, "currency: 7 characters is above the maximum length 3"),
        ({"currency": "us"}, "currency: 'us' does not match the pattern [A-Z]{3}"),
        ({"updated_at": "yesterday"}, "updated_at: 'yesterday' is not an ISO 8601 timestamp"),
        ({"updated_at": True}, "updated_at: expected an ISO 8601 timestamp"),
        ({"updated_at": [5]}, "updated_at: expected an ISO 8601 timestamp"),
        ({"updated_at": -5}, "updated_at: Unix time -5 out of range"),
    ],
)
def test_bad_products_are_rejected_with_a_reason_naming_the_column_and_the_rule(change: dict, reason: str) -> None:
    with pytest.raises(Reject) as caught:
        check_product({**GOOD, **change})
    assert caught.value.reason.startswith(reason)


def test_integer_ids_become_text() -> None:
    assert check_product({**GOOD, "product_id": 42})["product_id"] == "42"


def test_times_are_stored_in_utc_whatever_offset_they_came_with() -> None:
    row = check_product({**GOOD, "updated_at": "2026-01-01T01:00:00+01:00"})
    assert row["updated_at"] == "2026-01-01T00:00:00+00:00"
    assert check_product({**GOOD, "updated_at": 1767225600})["updated_at"] == "2026-01-01T00:00:00+00:00"
    assert check_product({**GOOD, "updated_at": 1767225600500})["updated_at"] == "2026-01-01T00:00:00.500000+00:00"


QUOTE = {"ticker": "aapl", "ts": "2026-01-01T00:00:00Z", "price": 189.5, "volume": "1200", "exchange": "NASDAQ"}


def test_a_good_quote_is_normalised() -> None:
    assert check_quote(QUOTE) == {"ticker": "AAPL", "ts": "2026-01-01T00:00:00+00:00", "price": Decimal("189.500000"),
                                  "volume": 1200, "currency": "USD", "exchange": "NASDAQ"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": 0}, "price: 0 is below the minimum 0.000001"),
        ({"price": -3}, "price: -3 is below the minimum"),
        ({"volume": -1}, "volume: -1 is below the minimum 0"),
        ({"volume": 1.5}, "volume: expected a whole number, got 1.5"),
        ({"volume": 2**70}, "volume: 1180591620717411303424 is outside the 64-bit range"),
        ({"ticker": "not a ticker"}, "ticker: 'NOT A TICKER' does not match the pattern"),
        ({"ts": None}, "ts: required value missing"),
    ],
)
def test_bad_quotes_are_rejected_with_a_specific_reason(change: dict, reason: str) -> None:
    with pytest.raises(Reject) as caught:
        check_quote({**QUOTE, **change})
    assert caught.value.reason.startswith(reason)


def _through_stages(dataset: str, raw: list[dict]) -> list:
    spec = SourceSpec(name="s", kind="http_json", dataset=dataset)
    return list(compose(source_stages(spec, BUILTIN[dataset], Lineage("s", "r", "j", "t")), map(Record, raw)))


def test_a_mention_without_a_ticker_field_takes_the_first_cashtag() -> None:
    good, bad = _through_stages("mentions", [
        {"platform": "telegram", "mention_id": 7, "ts": 1767225600, "text": "Long $tsla and $AAPL"},
        {"platform": "telegram", "mention_id": 8, "ts": 1767225600, "text": "gm"}])
    assert (good.row["ticker"], good.row["mention_id"], good.row["ts"]) == ("TSLA", "7", "2026-01-01T00:00:00+00:00")
    assert good.row["sentiment"] is not None  # the dataset's default stages ran
    assert isinstance(bad, Rejected) and bad.reason == "ticker: required value missing"


def test_posts_and_sensor_readings() -> None:
    assert check_post({"post_id": "3", "user_id": 1, "title": "t", "body": None}) == \
        {"post_id": 3, "user_id": 1, "title": "t", "body": None}
    with pytest.raises(Reject, match="post_id: 0 is below the minimum 1"):
        check_post({"post_id": 0, "user_id": 1, "title": "t"})
    row = check_reading({"sensor_id": "S1", "kind": "Flow", "ts": "2026-01-01T00:00:00Z", "value": "12.5"})
    assert (row["kind"], row["value"]) == ("flow", Decimal("12.5"))
    for change, reason in (({"value": "n/a"}, "value: cannot read 'n/a'"), ({"value": "inf"}, "value: not a finite"),
                           ({"value": None}, "value: required value missing"),
                           ({"kind": "wind"}, "kind: 'wind' is not one of temperature, pressure, flow")):
        with pytest.raises(Reject) as caught:
            check_reading({**row, **change})
        assert caught.value.reason.startswith(reason)


CUSTOMERS = {  # the issue's example, as a user writes it
    "table": "customers", "key": ["customer_id"], "write": "merge", "version_column": "updated_at",
    "time_column": "updated_at", "indexes": [["email"], ["country", "created_at"]],
    "columns": {"customer_id": "text", "email": {"type": "text", "required": True, "max_length": 320},
                "age": {"type": "integer", "min": 0, "max": 150},
                "plan": {"type": "text", "one_of": ["free", "pro", "team"]}, "balance": "money",
                "address": "json", "tags": "text[]", "birth_date": "date", "updated_at": "timestamp",
                "country": "text", "created_at": "timestamp", "code": {"type": "text", "pattern": "[A-Z]{2}-\\d+"},
                "score": "numeric", "active": "boolean"},
}
CUSTOMER = {"customer_id": "c1", "email": "a@example.com", "age": 40, "plan": "pro", "balance": "$1,299.00",
            "address": {"city": "Oslo", "lines": ["1 Main St"]}, "tags": ["vip"], "birth_date": "1986-04-01",
            "updated_at": "2026-01-01T00:00:00Z", "code": "NO-1", "score": "0.25", "active": "true"}


def test_the_issue_s_example_dataset_reads_every_type() -> None:
    dataset = parse_dataset("customers", CUSTOMERS)
    assert (dataset.table, dataset.key, dataset.write, dataset.version_column) == \
        ("customers", ("customer_id",), "merge", "updated_at")
    row = dataset.check(CUSTOMER)
    assert row["balance"] == Decimal("1299.00") and row["age"] == 40 and row["active"] is True
    assert row["address"] == '{"city":"Oslo","lines":["1 Main St"]}' and row["tags"] == ["vip"]
    assert (row["birth_date"], row["updated_at"]) == ("1986-04-01", "2026-01-01T00:00:00+00:00")
    assert row["score"] == Decimal("0.25") and row["country"] is None
    assert dataset.unique_key == ("source", "customer_id")
    assert parse_dataset("customers", dataset.to_dict()) == dataset  # what travels in a job reads back the same


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"age": 212}, "age: 212 is above the maximum 150"),
        ({"age": -1}, "age: -1 is below the minimum 0"),
        ({"email": None}, "email: required value missing"),
        ({"email": "x" * 321}, "email: 321 characters is above the maximum length 320"),
        ({"plan": "gold"}, "plan: 'gold' is not one of free, pro, team"),
        ({"code": "no-1"}, "code: 'no-1' does not match the pattern [A-Z]{2}-\\d+"),
        ({"customer_id": None}, "customer_id: required value missing"),  # the key is always required
        ({"updated_at": None}, "updated_at: required value missing"),  # so is the version
        ({"birth_date": "April"}, "birth_date: 'April' is not an ISO 8601 date"),
        ({"address": float("nan")}, "address: not representable as JSON"),
        ({"active": "maybe"}, "active: expected true or false"),
    ],
)
def test_a_value_that_fails_is_refused_naming_the_column_and_the_rule(change: dict, reason: str) -> None:
    with pytest.raises(Reject) as caught:
        parse_dataset("customers", CUSTOMERS).check({**CUSTOMER, **change})
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": ["nope"]}, "[datasets.customers] key 'key': 'nope' is not a declared column"),
        ({"key": []}, "missing required key 'key'"),
        ({"write": "upsert"}, "key 'write': expected one of 'append', 'merge', 'replace', 'history'"),
        ({"write": "append"}, "key 'version_column': only a merge or history dataset has one"),
        ({"table": "ingest_jobs"}, "'ingest_jobs' is one of the package's own tables"),
        ({"table": "Bad-Name"}, "key 'table': expected a lowercase table name"),
        ({"indexes": [["nope"]]}, "key 'indexes': 'nope' is not a declared column"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"colums": {}}, "unknown key 'colums'; did you mean 'columns'?"),
        ({"key": ["customer"]}, "'customer' is not a declared column; did you mean 'customer_id'?"),
        ({"columns": {"customer_id": "text", "updated_at": "timestamp", "x": "integr"}},
         "key 'x': unknown type 'integr'; did you mean 'integer'?"),
        ({"columns": {"customer_id": "text", "updated_at": "timestamp", "x": {"type": "text", "max_lenght": 3}}},
         "key 'x': unknown key 'max_lenght'; did you mean 'max_length'?"),
        ({"columns": {"customer_id": "text", "updated_at": "timestamp", "x": "float"}},
         "[datasets.customers.columns] key 'x': unknown type 'float'; known types: text, integer"),
        ({"columns": {"customer_id": "text", "updated_at": "timestamp", "x": {"type": "text", "min": 1}}},
         "key 'x' 'min': expected a number, on an integer, numeric or money column"),
        ({"columns": {"customer_id": "text", "updated_at": "timestamp", "source": "text"}},
         "key 'source': every table has this column already"),
        ({"columns": {"customer_id": "text", "updated_at": "timestamp", "x": {"type": "text", "pattern": "("}}},
         "key 'x' 'pattern': not a regular expression"),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_dataset_and_the_key(change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_dataset("customers", {**CUSTOMERS, **change}, "catalog.toml: ")
    assert message in str(caught.value)
    assert str(caught.value).startswith("catalog.toml: [datasets.customers")


def test_the_built_in_datasets_are_declarations_like_any_other() -> None:
    assert set(BUILTIN) == {"products", "quotes", "mentions", "posts", "sensors"}
    assert [BUILTIN[n].table for n in ("products", "quotes", "mentions", "posts", "sensors")] == \
        ["products", "stock_quotes", "social_mentions", "posts", "sensor_readings"]
    assert all(d.write == "append" for d in BUILTIN.values())


def test_stats_true_takes_the_numeric_columns_but_the_key() -> None:
    entry = {"key": ["id"], "stats": True,
             "columns": {"id": "integer", "price": "money", "qty": "integer", "ratio": "numeric", "name": "text"}}
    dataset = parse_dataset("orders", entry)
    assert dataset.stats_columns == ("price", "qty", "ratio")
    assert parse_dataset("orders", dataset.to_dict()).stats_columns == ("price", "qty", "ratio")  # as a job carries it
    assert parse_dataset("orders", {**entry, "stats": False}).stats_columns == ()
    with pytest.raises(ConfigError, match=r"\[datasets\.orders\] key 'stats': expected true or false, got 'yes'"):
        parse_dataset("orders", {**entry, "stats": "yes"})


def test_text_alone_and_in_a_list_goes_through_the_same_check() -> None:
    rule = {"type": "text", "max_length": 4, "pattern": "[a-z]+", "case": "lower"}
    dataset = parse_dataset("tags", {"key": ["id"], "columns": {"id": "text", "one": rule,
                                                                  "many": {**rule, "type": "text[]"}}})
    row = dataset.check({"id": "1", "one": "AB", "many": ["AB", "cd"]})
    assert row == {"id": "1", "one": "ab", "many": ["ab", "cd"]}
    for column, value, reason in (("one", "abcde", "one: 5 characters is above the maximum length 4"),
                                  ("many", ["ab", "abcde"], "many: 5 characters is above the maximum length 4"),
                                  ("one", "a1", "one: 'a1' does not match the pattern [a-z]+"),
                                  ("many", ["a1"], "many: 'a1' does not match the pattern [a-z]+")):
        with pytest.raises(Reject) as caught:
            dataset.check({"id": "1", column: value})
        assert caught.value.reason == reason


def _column(spec: dict) -> dict:
    return {"key": ["customer_id"], "columns": {"customer_id": "text", "updated_at": "timestamp", "code": spec}}


@pytest.mark.parametrize(
    ("spec", "instead"),
    [
        ({"type": "text", "case": "lower", "default": 5}, 'default = "5"'),  # lowering a number crashed
        ({"type": "text", "max_length": 3, "default": 5}, 'default = "5"'),  # len() of a number
        ({"type": "text", "pattern": "[a-z]+", "default": True}, 'default = "true"'),
        ({"type": "text", "one_of": ["a"], "default": ["a"]}, 'default = "..."'),  # a list is no set member
        ({"type": "text[]", "case": "lower", "default": "a"}, 'default = ["a"]'),  # a text iterated by letter
        ({"type": "integer", "min": 0, "default": "5"}, "default = 5"),  # text compared with a number
        ({"type": "integer", "default": 2.0}, "default = 2"),
        ({"type": "numeric", "max": 3, "default": "2.5"}, "default = 2.5"),
        ({"type": "numeric", "scale": 2, "default": True}, "default = 0"),  # Decimal('True')
        ({"type": "money", "default": [1]}, "default = 0"),
        ({"type": "boolean", "default": "true"}, "default = true"),
        ({"type": "timestamp", "default": datetime(2024, 1, 1, tzinfo=UTC)}, 'default = "2024-01-01T00:00:00+00:00"'),
        ({"type": "date", "default": date(2024, 1, 2)}, 'default = "2024-01-02"'),  # TOML's date: no JSON, no COPY
        ({"type": "json", "default": "x"}, "default = { ... }"),  # loaded as written: not JSON text
    ],
)
def test_a_default_of_another_type_than_its_column_is_refused_saying_what_to_write(spec: dict, instead: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_dataset("customers", _column(spec), "catalog.toml: ")
    message = str(caught.value)
    assert message.startswith("catalog.toml: [datasets.customers.columns] key 'code' 'default': the default of "
                              f"this {spec['type']} column must be ")
    assert message.endswith(f"; write {instead}") and "\n" not in message


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"type": "text", "one_of": ["a", "b"], "default": "c"}, "code: 'c' is not one of a, b"),
        ({"type": "integer", "min": 3, "default": 1}, "code: 1 is below the minimum 3"),
        ({"type": "money", "default": "abc"}, "code: cannot read 'abc' as an amount"),
        ({"type": "timestamp", "default": "yesterday"}, None),  # not ISO 8601: the type's rule
        ({"type": "numeric", "scale": 6, "default": 1e300}, None),  # kept to 6 decimals: InvalidOperation
    ],
)
def test_a_default_its_column_s_own_rules_refuse_is_refused_at_catalog_check(spec: dict, reason: str | None) -> None:
    with pytest.raises(ConfigError, match="key 'code' 'default': ") as caught:
        parse_dataset("customers", _column(spec), "catalog.toml: ")
    assert reason is None or f"({reason}); write a default they accept" in str(caught.value)


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "text", "case": "upper", "max_length": 3, "default": "usd"},
        {"type": "text[]", "default": ["a", "b"]},
        {"type": "integer", "min": 0, "default": 5},
        {"type": "numeric", "scale": 2, "default": 2.5},
        {"type": "money", "default": "12,50 EUR"},
        {"type": "boolean", "default": False},
        {"type": "timestamp", "default": "2024-01-01T00:00:00Z"},
        {"type": "date", "default": "2024-01-02"},
        {"type": "json", "default": {"a": 1}},
    ],
)
def test_a_default_of_the_column_s_type_fills_a_record_that_has_none_on_both_record_paths(spec: dict) -> None:
    dataset = parse_dataset("customers", _column(spec))
    reference = dataset.check({"customer_id": "c1", "updated_at": "2024-01-01T00:00:00Z"})
    compiled = list(CompiledRecordPath(dataset, {"customer_id": "id", "updated_at": "at", "code": "code"}).process(
        [Record(raw={"id": "c1", "at": "2024-01-01T00:00:00Z"}, row={})]))
    assert isinstance(compiled[0], Record) and compiled[0].row["code"] == reference["code"] is not None
    copy_serialiser(dataset)([{**compiled[0].row, "raw": {}}])  # the COPY text of the row is made


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "integer", "pattern": "[0-9]+"}, "'pattern': expected a regular expression, on a text or text[]"),
        ({"type": "integer", "case": "lower"}, "'case': expected \"lower\" or \"upper\", on text"),
        ({"type": "boolean", "max_length": 3}, "'max_length': expected a whole number above 0, on a text or text[]"),
        ({"type": "timestamp", "min": 0}, "'min': expected a number, on an integer, numeric or money column"),
        ({"type": "text", "scale": 2}, "'scale': expected 0 to 20 decimals, on a numeric or money column"),
        ({"type": "boolean", "one_of": [True]}, "'one_of': expected a list of values, on a text or integer column"),
    ],
)
def test_a_column_option_its_type_has_not_is_refused(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="key 'code' ") as caught:
        parse_dataset("customers", _column(spec), "catalog.toml: ")
    assert message in str(caught.value)
