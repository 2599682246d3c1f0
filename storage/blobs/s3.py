"""Blobs in an S3-compatible object store (AWS S3, MinIO, Cloudflare R2, …): `BLOB_URL=s3://bucket/prefix`.

Every host that runs a bot or an engine sees the same uploads and tracks. Credentials come from
boto3's usual chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, a profile, an instance role);
`BLOB_ENDPOINT_URL` points it at a server other than AWS. boto3 is the optional extra `s3`.

Writes are atomic: an upload is one PUT, and a track goes up with boto3's managed transfer, whose
multipart uploads (above 8 MB) become visible only when the last part is in. Reads stream: an
adapter gets a local copy downloaded in blocks into a cache folder under a temporary name and
renamed, so a half-downloaded file is never sent. Blobs never change once written (every attempt
writes its own track), so a cached copy stays valid until the blob is deleted.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from storage.blobs.store import array_bytes, array_from, array_relative, track_relative, upload_relative
from storage.contract.errors import StartupError
from storage.private import private_dir

NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


def parse_blob_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → ("bucket", "some/prefix"). Raises ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"BLOB_URL must look like s3://bucket/prefix, not {url!r}.")
    return parts.netloc, parts.path.strip("/")


def s3_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client (credentials and region from the standard AWS settings)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as error:
        raise StartupError("BLOB_URL names an S3 store, which needs boto3: pip install -e '.[s3]'.") from error
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=config)


class S3Blobs:
    """Uploads and tracks as objects under `s3://bucket/prefix/`."""

    def __init__(self, client: Any, bucket: str, prefix: str, work_dir: Path) -> None:
        """Use `client` on `bucket`, keys under `prefix`.

        Args:
            client: A boto3 S3 client.
            bucket: The bucket's name.
            prefix: Keys start with `prefix/` (empty: at the bucket's root).
            work_dir: A local folder for scratch files (tracks being encoded) and downloaded copies.
        """
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.scratch = work_dir / "scratch"
        self.cache = work_dir / "cache"
        private_dir(self.scratch)
        private_dir(self.cache)

    @classmethod
    def from_url(cls, url: str, endpoint_url: str | None, work_dir: Path) -> S3Blobs:
        """The store named by `BLOB_URL` (and `BLOB_ENDPOINT_URL`)."""
        bucket, prefix = parse_blob_url(url)
        return cls(s3_client(endpoint_url), bucket, prefix, work_dir)

    def key(self, relative: str) -> str:
        """The object key of a relative path."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def put_upload(self, data: bytes, suffix: str = ".bin") -> str:
        """Store an uploaded source (one PUT: the object appears whole or not at all)."""
        relative = upload_relative(suffix)
        self.client.put_object(Bucket=self.bucket, Key=self.key(relative), Body=data)
        return relative

    def uploads(self) -> Iterator[tuple[str, datetime]]:
        """Every object under uploads/, with its time of writing as naive UTC."""
        return self.stored("uploads")

    def stored(self, folder: str) -> Iterator[tuple[str, datetime]]:
        """Every object under `folder`/, with its time of writing as naive UTC (one LIST per 1000 objects)."""
        start = len(self.key(""))
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key(f"{folder}/"))
        for page in pages:
            for item in page.get("Contents", []):
                written = item["LastModified"].astimezone(UTC).replace(tzinfo=None)
                yield item["Key"][start:], written

    def exists(self, relative: str) -> bool:
        """Whether the object is there (a HEAD request)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(relative))
        except Exception as error:
            if _error_code(error) in NOT_FOUND:
                return False
            raise
        return True

    def delete(self, relative: str) -> None:
        """Delete the object and any local copy (deleting a missing object succeeds on S3)."""
        self.client.delete_object(Bucket=self.bucket, Key=self.key(relative))
        (self.cache / relative).unlink(missing_ok=True)

    def read_bytes(self, relative: str) -> bytes:
        """The object's content, read from its body stream."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(relative))["Body"]
        except Exception as error:
            if _error_code(error) in NOT_FOUND:
                raise FileNotFoundError(relative) from error
            raise
        try:
            return bytes(body.read())
        finally:
            body.close()

    def put_array(self, relative: str, array: np.ndarray) -> str:
        """Store a numpy array (a song's latents) as a `.npy` object beside `relative` (one PUT)."""
        relative = array_relative(relative)
        self.client.put_object(Bucket=self.bucket, Key=self.key(relative), Body=array_bytes(array))
        return relative

    def get_array(self, relative: str) -> np.ndarray:
        """A stored numpy array."""
        return array_from(self.read_bytes(relative))

    def local_path(self, relative: str) -> Path:
        """A local copy of the object, downloaded (in blocks) once and kept in the cache folder."""
        target = self.cache / relative
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            self.client.download_file(self.bucket, self.key(relative), str(temp))
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return target

    def prune_copies(self, before: datetime) -> int:
        """Delete downloaded copies (and abandoned scratch files) last written before `before` (naive UTC)."""
        cutoff = before.replace(tzinfo=UTC).timestamp()
        gone = 0
        for folder in (self.cache, self.scratch):
            for path in folder.rglob("*"):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    gone += 1
        return gone

    def track_relative(self, job_id: int, attempt: int) -> str:
        """Where the song of a job's attempt goes (each attempt its own object)."""
        return track_relative(job_id, attempt)

    def temp_path(self, relative: str) -> Path:
        """A local scratch file; `commit` uploads it."""
        return self.scratch / f".{Path(relative).name}.{uuid.uuid4().hex}.tmp.mp3"

    def scratch_root(self) -> Path:
        """The local scratch folder (tracks being encoded before their upload)."""
        return self.scratch

    def commit(self, temp: Path, relative: str) -> str:
        """Upload a finished scratch file under `relative` and remove it; returns the object key."""
        key = self.key(relative)
        try:
            self.client.upload_file(str(temp), self.bucket, key)
        finally:
            temp.unlink(missing_ok=True)
        return key


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
