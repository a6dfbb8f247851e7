"""A job's plugins and local files, by the worker's own permission (INGEST_PLUGINS, INGEST_FILES_DIR)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from ingest_workers.core.config import Settings, load_settings
from ingest_workers.core.errors import ConfigError, Refused
from ingest_workers.core.models import SourceSpec
from ingest_workers.core.permissions import Permissions


def spec(**changes: Any) -> SourceSpec:
    return SourceSpec(**{"name": "s", "kind": "http_json", "dataset": "posts", "url": "http://h/x", **changes})


def permissions(plugins: str | None = None, files_dir: str | None = None) -> Permissions:
    return Permissions.of(load_settings(env={k: v for k, v in (("INGEST_PLUGINS", plugins),
                                                              ("INGEST_FILES_DIR", files_dir)) if v}))


def test_built_ins_are_always_allowed_and_plugins_only_from_the_listed_modules() -> None:
    built_ins = spec(stages=["sentiment", {"name": "threshold", "maximum": 1}], sinks=["console", "alerts"])
    permissions().check(built_ins)
    mine = permissions("mycompany.feeds, mycompany.stages")
    mine.check(spec(kind="mycompany.feeds:Kafka", stages=["mycompany.stages.text:Shout"]))  # a submodule too
    mine.check(spec(auth={"kind": "mycompany.feeds.auth:Signer"}, pagination="mycompany.feeds:Scroll"))
    for asked, message in (
        (spec(kind="evil:Source"), "source s: source kind 'evil:Source': module evil is not allowed by "
                                   "INGEST_PLUGINS (mycompany.feeds, mycompany.stages)"),
        (spec(stages=["mycompany.feedsx:S"]), "stage 'mycompany.feedsx:S': module mycompany.feedsx is not"),
        (spec(sinks=[{"name": "os:system"}]), "sink 'os:system': module os is not allowed"),
        (spec(auth={"kind": "evil.auth:Signer", "key_env": "K"}), "auth kind 'evil.auth:Signer': module evil.auth"),
        (spec(pagination="evil.paging:Scroll"), "pagination 'evil.paging:Scroll': module evil.paging is not"),
    ):
        with pytest.raises(Refused, match=re.escape(message)):
            mine.check(asked)
    with pytest.raises(Refused, match=r"INGEST_PLUGINS \(unset: built-ins only\)"):
        permissions().check(spec(kind="mycompany.feeds:Kafka"))


def test_local_files_only_inside_the_allowed_directories(tmp_path: Path) -> None:
    allowed, outside = tmp_path / "data", tmp_path / "elsewhere"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "escape").symlink_to(outside)
    both = permissions(files_dir=f"{allowed}{os.pathsep}{tmp_path / 'out'}")
    both.check(spec(kind="csv", dataset="sensors", url=str(allowed / "a.csv"),
                    sinks=[{"name": "jsonl", "path": str(tmp_path / "out" / "new" / "rows.jsonl")}]))
    both.check(spec(kind="csv", dataset="sensors", url="https://h/sensors.csv"))  # not a local file
    for asked, message in (
        (spec(kind="csv", url="/etc/passwd"), "csv file '/etc/passwd' is not inside INGEST_FILES_DIR"),
        (spec(kind="csv", url=str(allowed / ".." / "elsewhere" / "a.csv")), "is not inside"),
        (spec(kind="csv", url=str(allowed / "escape" / "a.csv")), "is not inside"),  # a link out of it
        (spec(sinks=[{"name": "jsonl", "path": "/root/.bashrc"}]), "jsonl sink path '/root/.bashrc' is not inside"),
    ):
        with pytest.raises(Refused, match=re.escape(message)):
            both.check(asked)
    with pytest.raises(Refused, match=r"\(unset: no local files\)"):
        permissions().check(spec(kind="csv", url=str(allowed / "a.csv")))


def test_a_job_may_name_only_the_variables_the_worker_allows() -> None:
    for changes in ({"url": "http://evil.example/?x=${DATABASE_URL}"}, {"auth_env": "REDIS_URL"},
                    {"options": {"auth": {"password_env": "RQ_REDIS_URL"}}}):
        with pytest.raises(Refused, match="one of the worker's own settings"):
            permissions().check_variables(spec(**changes))
    narrow = Permissions.of(Settings(source_vars="SHOP_*, MOCK_URL"))
    narrow.check_variables(spec(url="${MOCK_URL}/x?k=${SHOP_KEY}", auth_env="SHOP_TOKEN"))
    with pytest.raises(Refused, match=re.escape("variable AWS_SECRET_ACCESS_KEY is not allowed by "
                                                "INGEST_SOURCE_VARS (SHOP_*, MOCK_URL)")):
        narrow.check_variables(spec(url="http://evil.example/?x=${AWS_SECRET_ACCESS_KEY}"))
    with pytest.raises(Refused, match=re.escape("variable AWS_SECRET_ACCESS_KEY is not allowed by INGEST_SOURCE_VARS "
                                                "(unset: no variables); allow what the worker's sources need in its "
                                                "environment, e.g. INGEST_SOURCE_VARS=CRM_*,SHOP_TOKEN")):
        permissions().check_variables(spec(url="${AWS_SECRET_ACCESS_KEY}"))  # unset: none
    with pytest.raises(Refused, match="one of the worker's own settings"):  # even when every other one is allowed
        Permissions.of(Settings(source_vars="*")).check_variables(spec(url="${DATABASE_URL}"))


def test_a_catalog_cannot_grant_a_worker_s_permissions() -> None:
    for key in ("plugins", "files_dir", "source_vars"):
        with pytest.raises(ConfigError, match=f"key '{key}': a worker's own permission, set only in its environment"):
            load_settings(file_settings={key: "anything"})
    assert load_settings(env={"INGEST_PLUGINS": "a.b"}) == Settings(plugins="a.b")
