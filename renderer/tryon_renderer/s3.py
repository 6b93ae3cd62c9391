"""S3 gateway: the only place the renderer talks to object storage.

Why a gateway: clients name objects in requests, so every bucket/key is validated here (one
allowed bucket, no traversal, no control characters), reads are size-bounded, and botocore errors
are translated into `StorageError` with a proper status (400/403/404/413/503) instead of leaking
as 500s. Clients use SigV4 and path-style addressing so S3-compatible servers work.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .errors import StorageError

_KEY_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")
MAX_KEY_LENGTH = 1024


def make_client(
    endpoint_url: str | None,
    region: str,
    access_key: str | None = None,
    secret_key: str | None = None,
    timeout_s: float = 5.0,
) -> Any:
    """A boto3 S3 client with SigV4, path-style addressing and short timeouts."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region,
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=timeout_s,
            read_timeout=timeout_s * 4,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )


def validate_key(key: str) -> str:
    """Reject keys that could escape a prefix or confuse S3/path handling."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise StorageError("S3 key must be 1..1024 characters", code="invalid_s3_key")
    if key.startswith("/") or _KEY_FORBIDDEN.search(key):
        raise StorageError(
            "S3 key must not start with '/' or contain control characters or backslashes",
            code="invalid_s3_key",
        )
    if any(part in ("..", ".") for part in key.split("/")):
        raise StorageError("S3 key must not contain '.' or '..' segments", code="invalid_s3_key")
    return key


def translate_error(err: Exception, what: str) -> StorageError:
    """Map a botocore exception to a StorageError with a meaningful HTTP status."""
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        http = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in ("NoSuchKey", "404", "NotFound") or http == 404:
            return StorageError(f"{what} not found", status=404, code="s3_object_not_found")
        if code == "NoSuchBucket":
            return StorageError(f"{what}: bucket not found", status=404, code="s3_bucket_not_found")
        if code in ("AccessDenied", "403", "Forbidden", "SignatureDoesNotMatch") or http == 403:
            return StorageError(f"{what}: access denied", status=403, code="s3_access_denied")
        return StorageError(f"{what}: S3 error {code}", status=502, code="s3_error")
    return StorageError(
        f"{what}: S3 is unavailable", status=503, code="s3_unavailable", retry_after_s=5
    )


@dataclass
class S3Gateway:
    """Reads inputs from and writes results to the one allowed bucket."""

    client: Any
    allowed_bucket: str
    output_prefix: str = "tryon-results/"
    presign_expiry_s: int = 900

    def check_ref(self, bucket: str, key: str) -> None:
        """Validate a client-supplied (bucket, key) pair before any network call."""
        if bucket != self.allowed_bucket:
            raise StorageError(
                f"bucket {bucket!r} is not allowed", status=403, code="s3_bucket_not_allowed"
            )
        validate_key(key)

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        """Fetch an object, refusing anything larger than max_bytes."""
        self.check_ref(bucket, key)
        what = f"s3://{bucket}/{key}"
        try:
            obj = self.client.get_object(Bucket=bucket, Key=key)
            length = int(obj.get("ContentLength", 0) or 0)
            if length > max_bytes:
                obj["Body"].close()
                raise StorageError(
                    f"{what} is {length} bytes, limit is {max_bytes}",
                    status=413,
                    code="s3_object_too_large",
                )
            data: bytes = obj["Body"].read(max_bytes + 1)
        except (ClientError, BotoCoreError) as err:
            raise translate_error(err, what) from None
        if len(data) > max_bytes:
            raise StorageError(f"{what} exceeds {max_bytes} bytes", status=413, code="too_large")
        return data

    def write_result(self, data: bytes, content_type: str, suffix: str) -> tuple[str, str]:
        """Store a rendered image under the output prefix; return (key, presigned GET URL)."""
        key = f"{self.output_prefix}{uuid.uuid4().hex}.{suffix}"
        what = f"s3://{self.allowed_bucket}/{key}"
        try:
            self.client.put_object(
                Bucket=self.allowed_bucket, Key=key, Body=data, ContentType=content_type
            )
            url: str = self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.allowed_bucket, "Key": key},
                ExpiresIn=self.presign_expiry_s,
            )
        except (ClientError, BotoCoreError) as err:
            raise translate_error(err, what) from None
        return key, url
