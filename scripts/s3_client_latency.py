"""Put/get latency of the S3 clients considered for the blob store (D-050), against SeaweedFS.

    python scripts/s3_client_latency.py [--reps 7] [--rounds 3]

Starts an embedded SeaweedFS (services/object_store.py) in a temp folder and, per round and
client, stores and reads back random float32 arrays of 1, 4, 16 and 30 MB the way the blob store
does: a HEAD, then a PUT of the .npy header and the array's own buffer (5 MiB parts above 5 MiB),
then a GET streamed into a preallocated buffer with sha256 on the fly. Prints the median per
size. s3fs is timed with its own whole-object calls (pipe_file / cat_file) when it imports; it
is not a dependency (its aiobotocore pins an older botocore than boto3's). Each client runs in
its own process, back to back.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES_MB = (1, 4, 16, 30)
PART = 5 << 20


def _one(client: str, endpoint: str, key_id: str, secret: str, bucket: str, reps: int) -> None:
    import numpy as np

    def npy_parts(a):
        h = io.BytesIO()
        np.lib.format.write_array_header_1_0(h, np.lib.format.header_data_from_array_1_0(a))
        return [h.getvalue(), memoryview(a).cast("B")]

    if client == "boto3":
        import boto3
        from botocore.exceptions import ClientError

        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key_id, aws_secret_access_key=secret,
                          region_name="us-east-1")

        class Chain(io.RawIOBase):
            def __init__(self, parts):
                self.parts, self.size, self.pos = parts, sum(len(p) for p in parts), 0

            def readable(self): return True
            def seekable(self): return True
            def tell(self): return self.pos

            def seek(self, off, whence=0):
                self.pos = {0: off, 1: self.pos + off, 2: self.size + off}[whence]
                return self.pos

            def readinto(self, b):
                n, start, out = 0, 0, memoryview(b)
                for p in self.parts:
                    if self.pos < start + len(p) and n < len(out):
                        lo = self.pos - start
                        k = min(len(p) - lo, len(out) - n)
                        out[n:n + k] = p[lo:lo + k]
                        n += k
                        self.pos += k
                    start += len(p)
                return n

        def exists(key):
            try:
                s3.head_object(Bucket=bucket, Key=key)
                return True
            except ClientError:
                return False

        def put(key, parts):
            s3.put_object(Bucket=bucket, Key=key, Body=Chain(parts))

        def get_into(key, out):
            h, n = hashlib.sha256(), 0
            for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20):
                out[n:n + len(chunk)] = chunk
                h.update(chunk)
                n += len(chunk)
            return h.hexdigest()
    elif client == "obstore":
        import obstore
        from obstore.store import S3Store

        st = S3Store(bucket, endpoint=endpoint, access_key_id=key_id, secret_access_key=secret, region="us-east-1",
                     client_options={"allow_http": True})

        def exists(key):
            try:
                obstore.head(st, key)
                return True
            except FileNotFoundError:
                return False

        def put(key, parts):
            if sum(len(p) for p in parts) <= PART:
                obstore.put(st, key, b"".join(parts), use_multipart=False)
            else:
                body = parts[1]
                obstore.put(st, key, iter([parts[0]] + [body[i:i + PART] for i in range(0, len(body), PART)]),
                            chunk_size=PART, max_concurrency=2)

        def get_into(key, out):
            h, n = hashlib.sha256(), 0
            for chunk in obstore.get(st, key).stream(min_chunk_size=1 << 20):
                m = memoryview(chunk)
                out[n:n + len(m)] = m
                h.update(m)
                n += len(m)
            return h.hexdigest()
    else:  # s3fs: whole objects
        import s3fs

        fs = s3fs.S3FileSystem(key=key_id, secret=secret, client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})

        def exists(key):
            return fs.exists(f"{bucket}/{key}")

        def put(key, parts):
            fs.pipe_file(f"{bucket}/{key}", b"".join(parts))

        def get_into(key, out):
            data = fs.cat_file(f"{bucket}/{key}")
            out[:len(data)] = data
            return hashlib.sha256(data).hexdigest()

    for mb in SIZES_MB:
        a = np.random.default_rng(mb).random((mb << 20) // 4, dtype=np.float32)
        parts = npy_parts(a)
        digest = hashlib.sha256(b"".join(parts)).hexdigest()
        out = bytearray(sum(len(p) for p in parts))
        puts, gets = [], []
        for i in range(reps + 1):  # the first round warms the connection pool
            key = f"{client}/{mb}/{i}-{time.time_ns()}"
            t0 = time.perf_counter()
            assert not exists(key)
            put(key, parts)
            t1 = time.perf_counter()
            assert get_into(key, out) == digest
            t2 = time.perf_counter()
            if i:
                puts.append(t1 - t0)
                gets.append(t2 - t1)
        print(f"{client:8} {mb:>2} MB  put {statistics.median(puts) * 1000:7.1f} ms  "
              f"get {statistics.median(gets) * 1000:7.1f} ms", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--one", nargs=5, help=argparse.SUPPRESS)  # CLIENT ENDPOINT KEY SECRET BUCKET: one child run
    args = ap.parse_args()
    if args.one:
        _one(*args.one[:1], *args.one[1:], reps=args.reps)  # type: ignore[misc]
        return 0
    from radstream.services.object_store import EmbeddedObjectStore

    clients = ["obstore", "boto3"]
    try:
        import s3fs  # noqa: F401
        clients.append("s3fs")
    except ImportError:
        print("s3fs not installed: timing obstore and boto3 only")
    with tempfile.TemporaryDirectory() as tmp, EmbeddedObjectStore(Path(tmp)) as store:
        store.ensure_bucket("latency")
        for r in range(args.rounds):
            print(f"-- round {r + 1}")
            for client in clients:
                subprocess.run([sys.executable, __file__, "--reps", str(args.reps), "--one", client, store.endpoint,
                                store.access_key, store.secret_key, "latency"], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
