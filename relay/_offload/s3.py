"""S3 for the offload and `replay --s3`: where objects go, and the few calls made.

One aiobotocore client (standard AWS credential chain: environment, profile, instance or pod
role), an optional `endpoint_url` for S3-compatible stores and tests. botocore's exceptions
stop here: callers see `OffloadError` naming the bucket and what to check.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError, OffloadError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

__all__ = ["S3Location", "get_object", "list_keys", "put_object", "s3_client", "translate"]


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing "/"; "" = the bucket's root

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
            raise ConfigError(f"{uri!r} is not an S3 location: expected s3://BUCKET[/PREFIX]")
        bucket, _, prefix = uri[5:].partition("/")
        return cls(bucket, prefix.strip("/"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


@contextlib.asynccontextmanager
async def s3_client(
    *, region: str = "", endpoint_url: str = "", timeout_s: float = 30.0
) -> AsyncIterator[S3Client]:
    """An S3 client; failures to build it (no region, say) are `OffloadError`s."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    from botocore import exceptions as bexc

    config = AioConfig(
        connect_timeout=min(10.0, timeout_s),
        read_timeout=timeout_s,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    try:
        factory = get_session().create_client(
            "s3", region_name=region or None, endpoint_url=endpoint_url or None, config=config
        )
        client = await factory.__aenter__()
    except bexc.BotoCoreError as exc:
        raise OffloadError(f"cannot set up an S3 client: {exc}") from None
    try:
        yield client
    finally:
        await factory.__aexit__(None, None, None)


def translate(exc: BaseException, what: str, location: S3Location) -> OffloadError:
    """botocore's exception for `what` (e.g. "uploading") as an `OffloadError` to act on."""
    from botocore import exceptions as bexc

    if isinstance(exc, bexc.ClientError):
        error: Any = exc.response.get("Error", {})
        code = error.get("Code", "?")
        hint = {
            "NoSuchBucket": "create the bucket or fix offload.s3_uri",
            "AccessDenied": "grant s3:PutObject, s3:ListBucket and s3:GetObject on it",
            "InvalidAccessKeyId": "check the AWS credentials (standard chain)",
            "SignatureDoesNotMatch": "check the AWS credentials (standard chain)",
        }.get(code, "check the bucket, the region and the credentials")
        return OffloadError(f"{what} {location}: S3 answered {code}: {hint}")
    if isinstance(exc, bexc.NoCredentialsError | bexc.PartialCredentialsError):
        return OffloadError(
            f"{what} {location}: no usable AWS credentials: set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the host or pod a role"
        )
    if isinstance(exc, bexc.NoRegionError):
        return OffloadError(f"{what} {location}: no AWS region: set offload.region")
    return OffloadError(f"{what} {location} failed: {type(exc).__name__}: {exc}")


async def list_keys(client: S3Client, location: S3Location) -> list[str]:
    """Every object key under the location, sorted (the offload's names sort in order)."""
    from botocore import exceptions as bexc

    prefix = f"{location.prefix}/" if location.prefix else ""
    keys: list[str] = []
    try:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []) if "Key" in item)
    except (bexc.BotoCoreError, bexc.ClientError) as exc:
        raise translate(exc, "listing", location) from None
    return sorted(keys)


async def get_object(client: S3Client, location: S3Location, key: str, max_bytes: int) -> bytes:
    from botocore import exceptions as bexc

    try:
        response = await client.get_object(Bucket=location.bucket, Key=key)
        async with response["Body"] as stream:
            data = await stream.read(max_bytes + 1)
    except (bexc.BotoCoreError, bexc.ClientError) as exc:
        raise translate(exc, f"reading {key} of", location) from None
    if len(data) > max_bytes:
        raise OffloadError(f"s3://{location.bucket}/{key} is larger than {max_bytes} bytes")
    return data


async def put_object(client: S3Client, location: S3Location, key: str, body: bytes) -> None:
    from botocore import exceptions as bexc

    try:
        await client.put_object(
            Bucket=location.bucket, Key=key, Body=body, ContentType="application/gzip"
        )
    except (bexc.BotoCoreError, bexc.ClientError) as exc:
        raise translate(exc, "uploading to", location) from None
