"""An S3-compatible server on loopback for the blob tests: moto's threaded server, with a fresh bucket.

The server keeps its objects in this process's memory and speaks HTTP on 127.0.0.1, so engine
processes a test starts reach the same store through `BLOB_ENDPOINT_URL`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Credentials for the loopback server only; moto accepts any.
ACCESS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class S3Server:
    """Where the server listens and which bucket a test uses."""

    endpoint_url: str
    bucket: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=ACCESS["AWS_SECRET_ACCESS_KEY"],
            region_name=ACCESS["AWS_DEFAULT_REGION"],
        )

    def object_keys(self) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def env(self, prefix: str = "songs") -> dict[str, str]:
        """The environment of a process that keeps its blobs in this bucket."""
        return {**ACCESS, "BLOB_URL": f"s3://{self.bucket}/{prefix}", "BLOB_ENDPOINT_URL": self.endpoint_url}


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start moto's S3 server on 127.0.0.1 (a free port), create a bucket, stop it afterwards."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        found = S3Server(f"http://{host}:{port}", f"songbot-{uuid.uuid4().hex[:8]}")
        found.client().create_bucket(Bucket=found.bucket)
        yield found
    finally:
        server.stop()
