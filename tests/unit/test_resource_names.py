"""Every resource name is spelled in one module: what it formats, its parsers read back, and
authz's limit on resources per decision is the one storage batches by."""

from __future__ import annotations

import datetime as dt

import pytest

from securefiles.authz.adapters.sql_checks import SqlChecksRepository
from securefiles.authz.adapters.sql_repository import SqlAuthzRepository, metadata
from securefiles.authz.domain.model import Permission
from securefiles.authz.domain.service import Authorization
from securefiles.common.db import make_engine
from securefiles.common.errors import InvalidArgument
from securefiles.common.principal import Principal
from securefiles.common.resource_names import (
    ANY_PIPELINE,
    MAX_RESOURCES_PER_DECISION,
    file_name,
    key_version_name,
    parse_child,
    parse_key_version,
    parse_project,
    parse_region,
    parse_run,
    pipeline_name,
    project_name,
    region_name,
    run_name,
)
from securefiles.common.tokens import TokenIssuer, generate_signing_key_pem, load_signing_key

FILE_ID = "0b6b7a5e-3f7a-4c4e-9a51-2f3b1f0e9d10"


def test_formatted_names_parse_back() -> None:
    assert file_name("demo", FILE_ID) == f"projects/demo/secureFiles/{FILE_ID}"
    assert parse_child(file_name("demo", FILE_ID), "secureFiles") == ("demo", FILE_ID)
    assert parse_project(project_name("demo")) == "demo"
    assert parse_child(pipeline_name("demo", 7), "pipelines") == ("demo", "7")
    assert parse_run(run_name("demo", 7, 42)) == ("demo", "7", 42)
    assert parse_run(run_name("demo", ANY_PIPELINE, 42)) == ("demo", "-", 42)
    assert parse_region(region_name("eu")) == "eu"
    assert parse_key_version(key_version_name("eu", 3)) == ("eu", 3)


def test_authz_decides_on_at_most_the_shared_limit_of_resources(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'authz.db'}", metadata)
    authz = Authorization(SqlAuthzRepository(engine), SqlChecksRepository(engine),
                          TokenIssuer(load_signing_key(generate_signing_key_pem())), ["eu"],
                          lambda: dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
    authz.bootstrap("user:admin")
    storage = Principal("service", "service:storage")
    at_limit = [file_name("default", FILE_ID)] * MAX_RESOURCES_PER_DECISION
    allowed = authz.library.check_access(storage, "user:admin", Permission.VIEW, at_limit)
    assert allowed == [True] * MAX_RESOURCES_PER_DECISION
    with pytest.raises(InvalidArgument) as refused:
        authz.library.check_access(storage, "user:admin", Permission.VIEW, [*at_limit, at_limit[0]])
    assert refused.value.reason == "TOO_MANY_RESOURCES"
