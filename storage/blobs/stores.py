"""Which blob store a process uses: the one its settings name."""

from __future__ import annotations

from storage.blobs.local import Blobs
from storage.blobs.s3 import S3Blobs
from storage.blobs.store import BlobStore
from storage.settings import Settings


def open_blobs(settings: Settings) -> BlobStore:
    """The object store of BLOB_URL (and BLOB_ENDPOINT_URL), else the local blob folder."""
    if settings.blob_url:
        return S3Blobs.from_url(settings.blob_url, settings.blob_endpoint_url, settings.blob_work_dir)
    return Blobs(settings.blob_dir)
