"""A small S3 facade: the only module that talks boto3 for the pipeline's objects.

It narrows botocore's error zoo to three outcomes callers can act on: ``ObjectNotFound``,
``PreconditionFailed`` (a conditional write lost a race) and ``StorageError`` (anything else,
with the key in the message). Conditional writes are what make the champion pointer a real
compare-and-swap, so they are first-class arguments rather than raw boto3 kwargs.
"""

from __future__ import annotations

import hashlib
import io
import json
import mimetypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pandas as pd
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from retrain.config import StorageConfig

T = TypeVar("T")

_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet",
}
DEFAULT_PAGE_SIZE = 1000  # S3's own maximum per ListObjectsV2 page
_COPY_CHUNK = 1 << 20  # bytes per read when streaming a download to disk


class StorageError(RuntimeError):
    """An S3 call failed for a reason other than a missing key or a failed precondition."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """The key does not exist (behaves like a missing file)."""


class PreconditionFailed(StorageError):
    """A conditional write (If-None-Match / If-Match) was refused: someone else wrote first."""


@dataclass(frozen=True)
class Opened:
    """An object opened for streaming (:meth:`S3Storage.open`). ``body`` is None when the
    caller's ``if_none_match`` ETag is still current (HTTP 304): nothing to send again."""

    key: str
    etag: str
    size: int
    content_type: str
    body: Any = None  # botocore StreamingBody: iterate it in chunks, then close it

    def chunks(self, size: int = _COPY_CHUNK) -> Iterator[bytes]:
        """The body in chunks of at most ``size`` bytes, closed at the end (or when dropped)."""
        if self.body is None:
            return
        try:
            yield from self.body.iter_chunks(size)
        finally:
            self.body.close()


@dataclass(frozen=True)
class Downloaded:
    """What :meth:`S3Storage.download` wrote: the version's ETag (quotes included) and the
    SHA-256 (hex) and size of exactly the bytes on disk, so the caller can record what it
    validated without reading the file again."""

    etag: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # as S3 returns it, quotes included: pass it back verbatim as ``if_match``
    last_modified: datetime


def content_type_for(path: str | Path) -> str:
    """Content-Type by extension, so HTML served from S3 renders instead of downloading."""
    suffix = Path(path).suffix.lower()
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(str(path))
    return guessed or "application/octet-stream"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


class S3Storage:
    """Bucket-scoped object access. boto3 clients are thread-safe, so one instance may be shared."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_config(cls, cfg: StorageConfig, **client_kwargs: Any) -> S3Storage:
        """A client for ``cfg``; a custom endpoint (moto, MinIO) gets path-style addressing.

        Virtual-hosted style would need ``<bucket>.<host>`` to resolve, which it does not for
        ``localhost`` or a docker-compose service name.
        """
        kwargs: dict[str, Any] = {"region_name": cfg.region}
        config = BotoConfig(retries={"mode": "standard", "max_attempts": 5})
        if cfg.endpoint_url:
            kwargs["endpoint_url"] = cfg.endpoint_url
            config = config.merge(BotoConfig(s3={"addressing_style": "path"}))
        if extra := client_kwargs.pop("config", None):
            config = config.merge(extra)
        kwargs.update(client_kwargs)
        return cls(boto3.client("s3", config=config, **kwargs), cfg.bucket)

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, endpoint={self.client.meta.endpoint_url!r})"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _call(self, op: str, key: str, fn: Callable[..., T], **kwargs: Any) -> T:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code, status = _error_code(exc), _status(exc)
            where = f"{op} {self.uri(key)}"
            if code == "PreconditionFailed" or status == 412:
                raise PreconditionFailed(f"{where}: precondition failed") from exc
            if code in _NOT_FOUND_CODES:
                raise ObjectNotFound(f"{where}: no such key") from exc
            raise StorageError(f"{where}: {code or status}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{op} {self.uri(key)}: {exc}") from exc

    # -- bucket -------------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (idempotent)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise StorageError(f"head bucket {self.bucket}: {exc}") from exc
        region = self.client.meta.region_name
        kwargs: dict[str, Any] = {}
        if region and region != "us-east-1":  # us-east-1 rejects an explicit constraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":
                raise StorageError(f"create bucket {self.bucket}: {exc}") from exc

    # -- listing and metadata -----------------------------------------------------------------

    def iter_objects(
        self, prefix: str = "", *, page_size: int = DEFAULT_PAGE_SIZE, start_after: str = ""
    ) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order; with ``start_after``, only keys after it (S3
        starts the listing there, so time-ordered keys can be read from a point in time)."""
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"StartAfter": start_after} if start_after else {}
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=prefix,
            PaginationConfig={"PageSize": page_size},
            **extra,
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"],
                        size=int(item["Size"]),
                        etag=item["ETag"],
                        last_modified=item["LastModified"],
                    )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"list {self.uri(prefix)}*: {exc}") from exc

    def list_objects(
        self, prefix: str = "", *, page_size: int = DEFAULT_PAGE_SIZE, start_after: str = ""
    ) -> list[ObjectInfo]:
        """Every object under ``prefix`` (after ``start_after``), in key order, following
        continuation tokens."""
        return list(self.iter_objects(prefix, page_size=page_size, start_after=start_after))

    def head_etag(self, key: str) -> str | None:
        try:
            return self._call("head", key, self.client.head_object, Key=key)["ETag"]
        except ObjectNotFound:
            return None

    def head_metadata(self, key: str) -> dict[str, str]:
        """The object's S3 user metadata (names lower-case, without x-amz-meta-)."""
        return dict(self._call("head", key, self.client.head_object, Key=key).get("Metadata", {}))

    def exists(self, key: str) -> bool:
        return self.head_etag(key) is not None

    # -- bytes --------------------------------------------------------------------------------

    def get_bytes_with_etag(self, key: str) -> tuple[bytes, str]:
        """Body and ETag from one GET, so a later ``if_match`` refers to exactly what was read."""
        resp = self._call("get", key, self.client.get_object, Key=key)
        return resp["Body"].read(), resp["ETag"]

    def open(self, key: str, *, if_none_match: str | None = None) -> Opened:
        """A GET whose body is streamed by the caller (a large report never sits in memory);
        with ``if_none_match`` the bucket answers 304 when the ETag still matches, and the
        result has no body."""
        kwargs: dict[str, Any] = {"Key": key}
        if if_none_match:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            resp = self._call("get", key, self.client.get_object, **kwargs)
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and (
                _status(cause) == 304 or _error_code(cause) in ("304", "NotModified")
            ):
                return Opened(key, if_none_match or "", 0, content_type_for(key))
            raise
        return Opened(
            key,
            resp["ETag"],
            int(resp.get("ContentLength") or 0),
            content_type_for(key),
            resp["Body"],
        )

    def get_bytes(self, key: str) -> bytes:
        return self.get_bytes_with_etag(key)[0]

    def download(self, key: str, path: str | Path, *, if_match: str | None = None) -> Downloaded:
        """Stream ``key`` to the local file ``path`` in one GET, hashing it on the way (never
        whole in memory); return the ETag, SHA-256 and size of exactly what was written.

        ``if_match``: download only that version of ``key`` (the ETag, as listed), else raise
        ``PreconditionFailed`` (someone uploaded a new one) without creating ``path``; a key
        that is gone raises ``ObjectNotFound``. A transfer that fails midway removes ``path``.
        """
        kwargs: dict[str, Any] = {"Key": key}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        resp = self._call("get", key, self.client.get_object, **kwargs)
        body, digest, size = resp["Body"], hashlib.sha256(), 0
        try:
            with open(path, "wb") as out:
                for chunk in body.iter_chunks(_COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except BaseException as exc:
            Path(path).unlink(missing_ok=True)
            if isinstance(exc, ClientError | BotoCoreError):
                raise StorageError(f"get {self.uri(key)}: {exc}") from exc
            raise
        finally:
            body.close()
        return Downloaded(resp["ETag"], digest.hexdigest(), size)

    def upload(self, key: str, path: str | Path, *, metadata: dict[str, str] | None = None) -> str:
        """Write the local file ``path`` to ``key`` in one PUT (streamed from disk, up to
        5 GB); return the new ETag."""
        kwargs: dict[str, Any] = {"Key": key, "ContentType": content_type_for(key)}
        if metadata:
            kwargs["Metadata"] = metadata
        with open(path, "rb") as body:
            return self._call("put", key, self.client.put_object, Body=body, **kwargs)["ETag"]

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        if_none_match: bool = False,
        if_match: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Write ``data``; return the new ETag. ``metadata``: S3 user metadata (x-amz-meta-*).

        ``if_none_match``: only create, never overwrite. ``if_match``: only replace the object
        whose ETag is given. A lost race raises ``PreconditionFailed``; so does ``if_match`` on a
        key that no longer exists (S3 answers 404 there, but the caller's precondition failed).
        """
        if if_none_match and if_match is not None:
            raise ValueError("if_none_match and if_match are mutually exclusive")
        kwargs: dict[str, Any] = {"Key": key, "Body": data}
        kwargs["ContentType"] = content_type or content_type_for(key)
        if metadata:
            kwargs["Metadata"] = metadata
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        try:
            return self._call("put", key, self.client.put_object, **kwargs)["ETag"]
        except ObjectNotFound as exc:
            if if_match is None:
                raise
            raise PreconditionFailed(f"put {self.uri(key)}: if_match on a missing key") from exc

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error (S3 semantics)."""
        self._call("delete", key, self.client.delete_object, Key=key)

    def copy(self, src: str, dst: str, *, if_etag: str | None = None) -> None:
        """Server-side copy of ``src`` to ``dst`` (overwriting it): the bytes never pass through
        this process. ``ObjectNotFound`` when ``src`` is missing; with ``if_etag``, only that
        version of ``src`` is copied. Single request: up to 5 GB."""
        extra = {"CopySourceIfMatch": if_etag} if if_etag is not None else {}
        self._call(
            "copy",
            f"{dst} (from {src})",
            self.client.copy_object,
            Key=dst,
            CopySource={"Bucket": self.bucket, "Key": src},
            **extra,
        )

    def move(self, src: str, dst: str, *, if_etag: str | None = None) -> None:
        """Server-side copy then delete, safe to retry after a crash at any point.

        The source is deleted only after the copy succeeded and the destination is confirmed
        with the source's size. If ``src`` is gone but ``dst`` exists, an earlier attempt already
        finished, so this is a no-op. ``if_etag``: move only that version of ``src``, else raise
        ``PreconditionFailed`` (someone uploaded a new one). Single-request copy: up to 5 GB.
        """
        try:
            head = self._call("head", src, self.client.head_object, Key=src)
        except ObjectNotFound:
            if self.exists(dst):
                return
            raise
        if if_etag is not None and head["ETag"].strip('"') != if_etag.strip('"'):
            raise PreconditionFailed(f"move {self.uri(src)}: it is no longer version {if_etag}")
        try:
            self.copy(src, dst, if_etag=head["ETag"])  # exactly the version we looked at
        except ObjectNotFound:
            if self.exists(dst):  # a concurrent mover finished first
                return
            raise
        copied = self._call("head", dst, self.client.head_object, Key=dst)
        if int(copied["ContentLength"]) != int(head["ContentLength"]):
            raise StorageError(
                f"move {self.uri(src)} -> {dst}: copy has {copied['ContentLength']} bytes, "
                f"source {head['ContentLength']}; source kept"
            )
        self.delete(src)

    # -- typed helpers ------------------------------------------------------------------------

    def get_json_with_etag(self, key: str) -> tuple[Any, str]:
        data, etag = self.get_bytes_with_etag(key)
        try:
            return json.loads(data), etag
        except ValueError as exc:
            raise StorageError(f"get {self.uri(key)}: not valid JSON: {exc}") from exc

    def get_json(self, key: str) -> Any:
        return self.get_json_with_etag(key)[0]

    def put_json(
        self, key: str, obj: Any, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        data = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False).encode()
        return self.put_bytes(
            key,
            data + b"\n",
            content_type="application/json",
            if_none_match=if_none_match,
            if_match=if_match,
        )

    def read_parquet(self, key: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.get_bytes(key)))

    def write_parquet(self, key: str, df: pd.DataFrame) -> str:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return self.put_bytes(key, buf.getvalue(), content_type=_CONTENT_TYPES[".parquet"])

    def upload_dir(self, local_dir: Path, prefix: str) -> int:
        """Upload every file under ``local_dir`` to ``prefix`` + relative path; return the count."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise NotADirectoryError(local_dir)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        count = 0
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            key = prefix + path.relative_to(local_dir).as_posix()
            self.put_bytes(key, path.read_bytes(), content_type=content_type_for(path))
            count += 1
        return count
