"""How `--durable` names Tansu's storage: a bucket's root and the AWS variables as Tansu reads them."""

from __future__ import annotations

import pytest
from radstream.services.durable_broker import open_durable_storage, tansu_env
from radstream.streams.blobstore_s3 import S3Settings


def test_an_s3_bucket_is_tansus_storage_with_the_aws_variables() -> None:
    storage = open_durable_storage("s3://radstream-topics/", env={
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "eu-west-1"})
    assert storage.url == "s3://radstream-topics/" and storage.object_store is None
    assert storage.env == {"AWS_ENDPOINT": "http://127.0.0.1:8333", "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
                           "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                           "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}


def test_https_and_aws_itself_need_no_allow_http() -> None:
    assert "AWS_ALLOW_HTTP" not in tansu_env(S3Settings(endpoint="https://s3.example.org"))
    assert "AWS_ENDPOINT" not in tansu_env(S3Settings())


@pytest.mark.parametrize("spec", ["s3://bucket/prefix", "s3:///", "postgres://db/x"])
def test_other_specs_are_refused_with_the_forms_expected(spec: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        open_durable_storage(spec, env={})
