#!/usr/bin/env python3
"""Helper of scripts/bench-catalog (run it with the barman virtualenv's python: it needs barman and boto3).

Subcommands:
  seed-fs BUCKET_DIR        write the bench store directly into an s3s-fs bucket folder (fast; mtimes set)
  seed-s3                   write the same objects through PutObject (boto3, thread pool; for versitygw, which
                            needs its own xattrs on every object, or any server)
  list-seq PREFIX           one sequential paginated ListObjectsV2 of PREFIX (no delimiter); prints the key count
  list-folders PREFIX       ListObjectsV2 of PREFIX with Delimiter='/' to find the folders, then one sequential
                            paginated listing per folder, no concurrency; prints the key count
  list-parallel PREFIX N    the same folder-by-folder listing with N folders listed at once (a thread pool, one
                            client); prints the key count (the floor of scripts/bench-scale on S3)
  ping                      waits (up to 60 s) until the bucket answers ListObjectsV2
  expected                  prints `wal_objects=N backups=N folders=N`: what the listings must find
  check-backup-list FILE    checks `barman-cloud-backup-list --format json` output lists the expected backups
  check-catalog FILE        checks `openova catalog --output json` output: BENCH_SERVER has the expected backups
                            and segments; prints a one-line summary

The store is deterministic (no randomness, fixed dates): same layout, same bytes, same mtimes on every run.
S3 subcommands read the endpoint, bucket and credentials from BENCH_ENDPOINT, BENCH_BUCKET, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION.
"""

import datetime as dt
import io
import json
import os
import sys
import tarfile
import time

PREFIX = os.environ.get("BENCH_PREFIX", "cnpg")
SERVER = os.environ.get("BENCH_SERVER", "bench-db")
N_BACKUPS = int(os.environ.get("BENCH_BACKUPS", "20"))
N_WALS = int(os.environ.get("BENCH_WALS", "20000"))
# Add the `SEGMENT.OFFSET.backup` file barman-cloud-wal-archive uploads for every base backup (in wals/ too).
BACKUP_LABEL_FILES = os.environ.get("BENCH_BACKUP_FILES", "1") != "0"

SEG_SIZE = 16 * 1024 * 1024  # 16 MiB, PostgreSQL's default: 256 segments per wals/TTTTTTTTLLLLLLLL/ folder
SEGS_PER_LOG = 0x100000000 // SEG_SIZE
TIMELINE = 1
FIRST_SEG = 1  # initdb's first segment is 000000010000000000000001
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
# Segment FIRST_SEG + i is archived at T0 + (i + 1) * STEP: 1,000 segments a day, 20,000 over 20 days (scripts/
# bench-scale sets BENCH_WAL_STEP=8.64: 10,000 a day, 1,000,000 over the 100 days of its 100 daily backups).
T0 = dt.datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC)
STEP = dt.timedelta(seconds=float(os.environ.get("BENCH_WAL_STEP", "86.4")))
# Backup i starts at 2026-11-01 02:00:00.123456+00:00 + i days (a daily ScheduledBackup) and runs 37 s.
B0 = dt.datetime(2026, 11, 1, 2, 0, 0, 123456, tzinfo=UTC)
# 16 bytes by default (BENCH_WAL_BYTES=1 for scripts/bench-scale): the bench measures listing, not transfer
WAL_BODY = (b"openova-bench-w\n" * 64)[: int(os.environ.get("BENCH_WAL_BYTES", "16"))]
SYSTEMID = "7438512960125829147"
PGDATA = "/var/lib/postgresql/data/pgdata"


def wal_name(seg):
    return "%08X%08X%08X" % (TIMELINE, seg // SEGS_PER_LOG, seg % SEGS_PER_LOG)


def lsn(seg, offset):
    """LSN text (`%X/%X`) of byte `offset` in segment number `seg`."""
    pos = seg * SEG_SIZE + offset
    return "%X/%X" % (pos >> 32, pos & 0xFFFFFFFF)


def wal_key(name):
    return "%s/%s/wals/%s/%s" % (PREFIX, SERVER, name[:16], name)


def wal_objects():
    """(key, body, mtime as an aware datetime) of every WAL object, oldest first."""
    for i in range(N_WALS):
        seg = FIRST_SEG + i
        yield wal_key(wal_name(seg)), WAL_BODY, T0 + (i + 1) * STEP


def backup_plan():
    """One dict per backup: id, times, segments, offsets."""
    out = []
    for i in range(N_BACKUPS):
        begin = B0 + dt.timedelta(days=i)
        end = begin + dt.timedelta(seconds=37, microseconds=654321 - 123456)
        # The segment being written when the backup starts (it is archived after `begin`).
        begin_seg = FIRST_SEG + int((begin - T0) / STEP)
        end_seg = begin_seg + 1  # the checkpoint + pg_backup_stop cross into the next segment
        out.append(
            dict(
                i=i,
                # barman-cloud: datetime.now().strftime("%Y%m%dT%H%M%S"), local time of the pod (UTC here)
                id=begin.strftime("%Y%m%dT%H%M%S"),
                begin=begin,
                end=end,
                begin_seg=begin_seg,
                end_seg=end_seg,
                begin_offset=0x28,
                end_offset=0x138,
                cluster_size=41_943_040 + i * 1_048_576,
            )
        )
    return out


def data_tar(b):
    """A small valid tar standing in for data.tar (PG_VERSION + backup_label)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, content in (("PG_VERSION", b"15\n"), ("backup_label", label_text(b).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(content)
            ti.mtime = int(b["begin"].timestamp())
            ti.mode = 0o600
            tf.addfile(ti, io.BytesIO(content))
    return buf.getvalue()


def label_text(b):
    return (
        "START WAL LOCATION: %s (file %s)\n"
        "CHECKPOINT LOCATION: %s\n"
        "BACKUP METHOD: streamed\n"
        "BACKUP FROM: primary\n"
        "START TIME: %s UTC\n"
        "LABEL: Barman backup %s %s\n"
        "START TIMELINE: %d\n"
        % (
            lsn(b["begin_seg"], b["begin_offset"]),
            wal_name(b["begin_seg"]),
            lsn(b["begin_seg"], 0x60),
            b["begin"].strftime("%Y-%m-%d %H:%M:%S"),
            SERVER,
            b["id"],
            TIMELINE,
        )
    )


def backup_info_text(b):
    """backup.info exactly as barman-cloud-backup 3.17 serialises it (barman's own BackupInfo.save), with the
    field values a real one has (compare tests/fixtures/barman/done-plain.backup.info)."""
    import barman.output  # noqa: F401  (barman.infofile and barman.output import each other; output first)
    from barman.infofile import BackupInfo

    bi = BackupInfo(backup_id=b["id"], server_name=SERVER)
    total = 35.123456 + b["i"] * 0.01
    fields = dict(
        systemid=SYSTEMID,
        pgdata=PGDATA,
        version=150018,
        xlog_segment_size=SEG_SIZE,
        config_file=PGDATA + "/postgresql.conf",
        hba_file=PGDATA + "/pg_hba.conf",
        ident_file=PGDATA + "/pg_ident.conf",
        included_files=[PGDATA + "/postgresql.auto.conf"],
        tablespaces=None,
        data_checksums="on",
        summarize_wal=None,
        cluster_size=b["cluster_size"],
        timeline=TIMELINE,
        begin_time=b["begin"],
        begin_xlog=lsn(b["begin_seg"], b["begin_offset"]),
        begin_wal=wal_name(b["begin_seg"]),
        begin_offset=b["begin_offset"],
        end_time=b["end"],
        end_xlog=lsn(b["end_seg"], b["end_offset"]),
        end_wal=wal_name(b["end_seg"]),
        end_offset=b["end_offset"],
        backup_label=label_text(b),
        size=None,  # barman-cloud-backup 3.17 leaves it unset (see tests/fixtures/barman/done-plain.backup.info)
        copy_stats={
            "total_time": total,
            "number_of_workers": 2,
            "analysis_time": 0,
            "analysis_time_per_item": {"data": 0},
            "copy_time_per_item": {"data": total - 0.5},
            "serialized_copy_time_per_item": {"data": total - 1.0},
            "copy_time": total - 0.5,
            "serialized_copy_time": total - 1.0,
        },
        status=BackupInfo.DONE,
    )
    for k, v in fields.items():
        bi.set_attribute(k, v)
    out = io.BytesIO()
    bi.save(file_object=out)
    return out.getvalue()


def all_objects():
    """(key, body, mtime) of the whole store, in upload order (tars, backup.info last, WALs)."""
    objs = []
    backups = backup_plan()
    for b in backups:
        base = "%s/%s/base/%s/" % (PREFIX, SERVER, b["id"])
        tar = data_tar(b)
        objs.append((base + "data.tar", tar, b["end"] - dt.timedelta(seconds=1)))
        objs.append((base + "backup.info", backup_info_text(b), b["end"]))
        if BACKUP_LABEL_FILES:
            # barman-cloud-wal-archive uploads the backup history file as soon as pg_backup_stop writes it.
            name = "%s.%08X.backup" % (wal_name(b["begin_seg"]), b["begin_offset"])
            body = (
                "START WAL LOCATION: %s (file %s)\nSTOP WAL LOCATION: %s (file %s)\n"
                "CHECKPOINT LOCATION: %s\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n"
                "START TIME: %s UTC\nLABEL: Barman backup %s %s\nSTART TIMELINE: 1\n"
                "STOP TIME: %s UTC\nSTOP TIMELINE: 1\n"
                % (
                    lsn(b["begin_seg"], b["begin_offset"]), wal_name(b["begin_seg"]),
                    lsn(b["end_seg"], b["end_offset"]), wal_name(b["end_seg"]),
                    lsn(b["begin_seg"], 0x60), b["begin"].strftime("%Y-%m-%d %H:%M:%S"), SERVER, b["id"],
                    b["end"].strftime("%Y-%m-%d %H:%M:%S"),
                )
            ).encode()
            objs.append((wal_key(name), body, b["end"]))
    objs.extend(wal_objects())
    return objs, backups


def summary(objs, backups):
    folders = {k.rsplit("/", 1)[0] for k, _, _ in objs if "/wals/" in k}
    first, last = wal_name(FIRST_SEG), wal_name(FIRST_SEG + N_WALS - 1)
    return (
        "%d backups (%s .. %s), %d WAL segments %s..%s in %d folders, %d objects in all"
        % (len(backups), backups[0]["id"], backups[-1]["id"], N_WALS, first, last, len(folders), len(objs))
    )


def seed_fs(bucket_dir):
    objs, backups = all_objects()
    made = set()
    for key, body, mtime in objs:
        path = os.path.join(bucket_dir, key)
        d = os.path.dirname(path)
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        with open(path, "wb") as f:
            f.write(body)
        ns = (mtime - EPOCH) // dt.timedelta(microseconds=1) * 1000
        os.utime(path, ns=(ns, ns))
    print(summary(objs, backups))


def s3_client():
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=os.environ["BENCH_ENDPOINT"],
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32, retries={"max_attempts": 5}),
    )


def seed_s3():
    from concurrent.futures import ThreadPoolExecutor

    objs, backups = all_objects()
    bucket = os.environ["BENCH_BUCKET"]
    s3 = s3_client()
    # backup.info files go last, as barman-cloud uploads them (not that the bench depends on it).
    first = [o for o in objs if not o[0].endswith("/backup.info")]
    last = [o for o in objs if o[0].endswith("/backup.info")]
    for batch in (first, last):
        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(lambda o: s3.put_object(Bucket=bucket, Key=o[0], Body=o[1]), batch))
    print(summary(objs, backups))


def list_pages(s3, bucket, prefix, delimiter=None):
    """Sequential paginated ListObjectsV2 (the way barman-cloud's S3CloudInterface.list_bucket does it)."""
    keys, prefixes = 0, []
    kw = dict(Bucket=bucket, Prefix=prefix)
    if delimiter:
        kw["Delimiter"] = delimiter
    for page in s3.get_paginator("list_objects_v2").paginate(**kw):
        keys += len(page.get("Contents", []))
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return keys, prefixes


def list_seq(prefix):
    s3 = s3_client()
    keys, _ = list_pages(s3, os.environ["BENCH_BUCKET"], prefix)
    print(keys)


def list_folders(prefix):
    s3 = s3_client()
    bucket = os.environ["BENCH_BUCKET"]
    # `Delimiter` also on the per-folder listings: s3s-fs walks the whole bucket for a listing without a
    # delimiter, but only the folders on the prefix's path with one. Real stores do not care.
    delim = os.environ.get("BENCH_FOLDER_DELIMITER", "/") or None
    keys, folders = list_pages(s3, bucket, prefix, "/")  # .history files sit directly in wals/
    for folder in folders:
        n, _ = list_pages(s3, bucket, folder, delim)
        keys += n
    print(keys)


def list_parallel(prefix, workers):
    from concurrent.futures import ThreadPoolExecutor

    s3 = s3_client()
    bucket = os.environ["BENCH_BUCKET"]
    keys, folders = list_pages(s3, bucket, prefix, "/")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        keys += sum(n for n, _ in pool.map(lambda f: list_pages(s3, bucket, f, "/"), folders))
    print(keys)


def ping(bucket=None):
    """Waits (up to 60 s) until `bucket` (default BENCH_BUCKET) answers ListObjectsV2."""
    s3 = s3_client()
    bucket = bucket or os.environ["BENCH_BUCKET"]
    deadline = time.monotonic() + 60
    while True:
        try:
            # With a delimiter: s3s-fs answers a listing without one by walking every file of the
            # bucket, which at a million objects outlasted boto3's 60 s read timeout here.
            s3.list_objects_v2(Bucket=bucket, MaxKeys=1, Delimiter="/")
            return 0
        except Exception as e:  # noqa: BLE001 (any failure means "not yet")
            if time.monotonic() > deadline:
                print("bucket %s at %s not usable within 60 s: %s" % (bucket, os.environ["BENCH_ENDPOINT"], e))
                return 1
            time.sleep(0.25)


def expected():
    objs, backups = all_objects()
    wal_objs = [k for k, _, _ in objs if "/wals/" in k]
    folders = {k.rsplit("/", 1)[0] for k in wal_objs}
    print("wal_objects=%d backups=%d folders=%d" % (len(wal_objs), len(backups), len(folders)))


def check_backup_list(path):
    try:
        with open(path) as f:
            doc = json.load(f)
        ids = [b["backup_id"] for b in doc["backups_list"]]
        done = [b for b in doc["backups_list"] if b.get("status") == "DONE"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("barman-cloud-backup-list output is not what 3.17 prints: %s" % e)
        return 1
    if len(ids) != N_BACKUPS or len(done) != N_BACKUPS:
        print("barman-cloud-backup-list lists %d backups (%d DONE), want %d" % (len(ids), len(done), N_BACKUPS))
        return 1
    return 0


def find_server(doc, server):
    """The object describing `server` anywhere in `doc` (tolerant of how the catalog JSON nests it)."""
    stack = [doc]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            if (x.get("server") == server or x.get("name") == server) and "backups" in x:
                return x
            if server in x and isinstance(x[server], dict) and "backups" in x[server]:
                return x[server]
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return None


def count(v):
    if isinstance(v, list):
        return len(v)
    if isinstance(v, int):
        return v
    if isinstance(v, dict):
        for k in ("count", "total", "segments"):
            if isinstance(v.get(k), int):
                return v[k]
    return None


def find_gaps(x):
    """Number of WAL gaps the catalog reports (any `gaps` list/number below the server), or None."""
    found = None
    stack = [x]
    while stack:
        y = stack.pop()
        if isinstance(y, dict):
            for k, v in y.items():
                if k in ("gaps", "wal_gaps"):
                    c = count(v)
                    if c is not None:
                        found = (found or 0) + c
                else:
                    stack.append(v)
        elif isinstance(y, list):
            stack.extend(y)
    return found


def check_catalog(path):
    want_b = N_BACKUPS
    want_w = N_WALS
    try:
        with open(path) as f:
            text = f.read()
        if not text.strip():
            print("openova catalog printed nothing on stdout (is `openova catalog --output json` implemented?)")
            return 1
        doc = json.loads(text)
    except (OSError, ValueError) as e:
        print("openova catalog output is not JSON: %s" % e)
        return 1
    srv = find_server(doc, SERVER)
    if srv is None:
        print("openova catalog output has no server %r" % SERVER)
        return 1
    errors = []
    nb = count(srv.get("backups"))
    if nb != want_b:
        errors.append("backups: got %r, want %d" % (nb, want_b))
    wal = srv.get("wal")
    nw = None
    if isinstance(wal, dict):
        nw = wal.get("segments") if isinstance(wal.get("segments"), int) else None
        if nw is None and isinstance(wal.get("timelines"), list):
            nw = sum(count(t.get("segments")) or 0 for t in wal["timelines"])
    else:
        nw = count(wal)
    if nw != want_w:
        errors.append("WAL segments: got %r, want %d" % (nw, want_w))
    if isinstance(srv.get("backups"), list):
        bad = [b.get("id") for b in srv["backups"] if isinstance(b, dict) and b.get("status") not in (None, "DONE", "done", "Done")]
        if bad:
            errors.append("backups not DONE: %s" % bad)
    gaps = find_gaps(srv)
    if gaps:
        errors.append("reports %d WAL gap(s), the store has none" % gaps)
    window = srv.get("window")
    if isinstance(window, dict) and window.get("unrestorable"):
        errors.append("reports unrestorable backups, all are restorable: %s" % window["unrestorable"])
    if errors:
        print("openova catalog output is wrong: " + "; ".join(errors))
        return 1
    print("%d backups, %d WAL segments, gaps: %s" % (nb, nw, "none" if gaps is not None else "(no `gaps` field)"))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "seed-fs" and len(args) == 1:
        seed_fs(args[0])
    elif cmd == "seed-s3" and not args:
        seed_s3()
    elif cmd == "list-seq" and len(args) == 1:
        list_seq(args[0])
    elif cmd == "list-folders" and len(args) == 1:
        list_folders(args[0])
    elif cmd == "list-parallel" and len(args) == 2:
        list_parallel(args[0], int(args[1]))
    elif cmd == "ping" and not args:
        return ping()
    elif cmd == "expected" and not args:
        expected()
    elif cmd == "check-backup-list" and len(args) == 1:
        return check_backup_list(args[0])
    elif cmd == "check-catalog" and len(args) == 1:
        return check_catalog(args[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
