#!/usr/bin/env python3
"""Helper of scripts/bench-restore (run it with the barman virtualenv's python: it needs barman and boto3).

Subcommands:
  seed N                    upload (PutObject) N distinct, real-looking 16 MiB WAL segments on timeline 1
                            (000000010000000000000001 ..) gzip-compressed as barman-cloud-wal-archive -z does
                            (barman's own `compress()`), as BENCH_PREFIX/BENCH_SERVER/wals/TTTTTTTTLLLLLLLL/NAME.gz
                            in BENCH_BUCKET; prints a one-line summary
  expected N                prints `NAME SHA256` of the N uncompressed segments (what a restore must write)
  archive SRC               upload (PutObject) the files of a local WAL archive folder (segments, .backup,
                            .history, as archive_command `cp` left them) into BENCH_BUCKET, gzip-compressed as
                            barman-cloud-wal-archive -z does; prints the number of segments
  sha256 FILE...            prints `SHA256 FILE` lines
  download DEST KEY...      downloads the objects KEY (GetObject) of BENCH_BUCKET into the folder DEST
  manifest DIR              prints `FILES BYTES SHA256` of a restored PostgreSQL data folder: every regular file
                            under base/ and global/ (relative path and content, in path order), what both
                            restores of a base backup must have written identically
  ping                      waits (up to 60 s) until the bucket answers ListObjectsV2

Synthetic segments are deterministic (same bytes on every run). Each is a 16 MiB PostgreSQL 15 WAL segment
switched early (archive_timeout, pg_switch_wal) on a quiet server: BENCH_FILL_KIB KiB (default 1024) of
record-like bytes (4 bits of entropy a byte, unique per segment) in 8 KiB pages that each start with a page
header (the first one long: XLP_LONG_HEADER, system identifier, xlp_seg_size = 16 MiB, xlp_xlog_blcksz = 8192),
and all zeros after the last of those pages, as PostgreSQL 15 leaves a switched segment (checked on segments
it archived after pg_switch_wal(): no page headers past the last written page). S3 subcommands read the endpoint, bucket
and credentials from BENCH_ENDPOINT, BENCH_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION.
"""

import gzip
import hashlib
import io
import os
import random
import struct
import sys
import time

PREFIX = os.environ.get("BENCH_PREFIX", "cnpg")
SERVER = os.environ.get("BENCH_SERVER", "bench-db")
FILL = int(os.environ.get("BENCH_FILL_KIB", "1024")) * 1024

SEG_SIZE = 16 * 1024 * 1024
PAGE = 8192
SEGS_PER_LOG = 0x100000000 // SEG_SIZE
TIMELINE = 1
XLOG_PAGE_MAGIC = 0xD110  # PostgreSQL 15
XLP_LONG_HEADER = 0x0002
SYSID = 7438512960125829147
# 16 values: record-like bytes that gzip compresses to about half.
NIBBLES = bytes(range(256)).translate(bytes((b & 0x0F) * 17 for b in range(256)))


def wal_name(seg):
    return "%08X%08X%08X" % (TIMELINE, seg // SEGS_PER_LOG, seg % SEGS_PER_LOG)


def segment(seg):
    """The uncompressed bytes of segment number `seg`."""
    buf = bytearray(SEG_SIZE)
    base = seg * SEG_SIZE
    # At most what the page bodies hold (each page but the first loses a 24-byte header, the first 40).
    fill = min(FILL, SEG_SIZE - 40 - 24 * (SEG_SIZE // PAGE - 1))
    # Pages holding records (headers included); the rest of a switched segment is zeros.
    pages = 1
    while fill > 0 and pages < SEG_SIZE // PAGE and (pages * PAGE - 40 - 24 * (pages - 1)) < fill:
        pages += 1
    for p in range(pages):
        off = p * PAGE
        info = XLP_LONG_HEADER if p == 0 else 0
        # XLogPageHeaderData: magic u16, info u16, tli u32, pageaddr u64, rem_len u32 (+4 padding)
        struct.pack_into("<HHIQI", buf, off, XLOG_PAGE_MAGIC, info, TIMELINE, base + off, 0)
        if p == 0:
            # XLogLongPageHeaderData: sysid u64, seg_size u32, xlog_blcksz u32
            struct.pack_into("<QII", buf, 24, SYSID, SEG_SIZE, PAGE)
    if fill > 0:
        rng = random.Random(seg)
        data = rng.randbytes(fill).translate(NIBBLES)
        # Keep the page headers: fill the page bodies only.
        pos, i = 40, 0
        while i < fill:
            page_end = (pos // PAGE + 1) * PAGE
            n = min(page_end - pos, fill - i)
            buf[pos : pos + n] = data[i : i + n]
            i += n
            pos = page_end + 24
    return bytes(buf)


def gzip_like_barman(raw):
    """gzip as barman-cloud-wal-archive -z does (barman's own compress(), default level)."""
    try:
        from barman.clients.cloud_compression import compress

        out = compress(io.BytesIO(raw), "gzip", None)
        return out.getvalue() if hasattr(out, "getvalue") else out.read()
    except Exception:  # an older/newer barman: same format, python's gzip at its default level
        return gzip.compress(raw)


def wal_key(name):
    """Where barman-cloud-wal-archive puts `name` (+ .gz): segments and their .backup/.partial files in the
    segment's folder, .history files directly in wals/."""
    if is_segment(name[:24]):
        return "%s/%s/wals/%s/%s.gz" % (PREFIX, SERVER, name[:16], name)
    return "%s/%s/wals/%s.gz" % (PREFIX, SERVER, name)


def upload(items):
    """PutObject of every (key, body producer) in `items`, a few at a time (gzip releases the GIL); returns
    the bytes uploaded. Through S3, not into the server's folder: versitygw keeps ETags and checksums in xattrs
    that a file written behind its back lacks."""
    from concurrent.futures import ThreadPoolExecutor

    client = s3()
    bucket = os.environ.get("BENCH_BUCKET", "bench")

    def put(item):
        key, make = item
        body = make()
        client.put_object(Bucket=bucket, Key=key, Body=body)
        return len(body)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return sum(pool.map(put, items))


def seed(n):
    items = [(wal_key(wal_name(1 + i)), (lambda seg=1 + i: gzip_like_barman(segment(seg)))) for i in range(n)]
    total = upload(items)
    print(
        "%d segments %s .. %s, 16 MiB each (%d KiB of record-like bytes, zeros after), "
        "gzip-compressed to %.1f KiB each on average (%.1f MiB in all)"
        % (n, wal_name(1), wal_name(n), FILL // 1024, total / n / 1024, total / 1024 / 1024)
    )


def expected(n):
    for i in range(n):
        print(wal_name(1 + i), hashlib.sha256(segment(1 + i)).hexdigest())


def is_segment(name):
    return len(name) == 24 and all(c in "0123456789ABCDEF" for c in name)


def archive(src):
    def gz(path):
        with open(path, "rb") as f:
            return gzip_like_barman(f.read())

    names = [n for n in sorted(os.listdir(src)) if os.path.isfile(os.path.join(src, n))]
    upload([(wal_key(n), (lambda p=os.path.join(src, n): gz(p))) for n in names])
    print(sum(1 for n in names if is_segment(n)))


def s3():
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["BENCH_ENDPOINT"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, max_pool_connections=8),
    )


def ping():
    client = s3()
    bucket = os.environ.get("BENCH_BUCKET", "bench")
    deadline = time.time() + 60
    while True:
        try:
            client.list_objects_v2(Bucket=bucket, MaxKeys=1)
            return 0
        except Exception as e:  # noqa: BLE001
            if time.time() > deadline:
                print("bucket %s does not answer: %s" % (bucket, e), file=sys.stderr)
                return 1
            time.sleep(0.1)


def download(dest, keys):
    client = s3()
    bucket = os.environ.get("BENCH_BUCKET", "bench")
    for key in keys:
        client.download_file(bucket, key, os.path.join(dest, key.rsplit("/", 1)[-1]))


def manifest(root):
    digest, files, size = hashlib.sha256(), 0, 0
    paths = []
    for top in ("base", "global"):
        for d, _, names in os.walk(os.path.join(root, top)):
            paths.extend(os.path.join(d, n) for n in names)
    for path in sorted(paths):
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        digest.update(os.path.relpath(path, root).encode() + b"\0")
        with open(path, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                digest.update(block)
                size += len(block)
        files += 1
    print(files, size, digest.hexdigest())


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "seed" and len(args) == 1:
        seed(int(args[0]))
    elif cmd == "expected":
        expected(int(args[0]))
    elif cmd == "archive" and len(args) == 1:
        archive(args[0])
    elif cmd == "sha256":
        for p in args:
            with open(p, "rb") as f:
                print(hashlib.sha256(f.read()).hexdigest(), p)
    elif cmd == "ping":
        return ping()
    elif cmd == "download" and len(args) >= 2:
        download(args[0], args[1:])
    elif cmd == "manifest" and len(args) == 1:
        manifest(args[0])
    else:
        print("unknown subcommand %s" % cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
