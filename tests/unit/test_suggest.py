from ingest_workers.core.suggest import did_you_mean


def test_the_nearest_known_name_is_suggested() -> None:
    assert did_you_mean("page_sise", ["page_size", "page_param", "url"]) == "; did you mean 'page_size'?"


def test_nothing_is_suggested_when_no_name_is_near() -> None:
    assert did_you_mean("zzz", ["page_size", "url"]) == ""
