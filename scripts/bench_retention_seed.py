#!/usr/bin/env python3
"""Helper of scripts/bench-retention (run it with the barman virtualenv's python: it needs barman and boto3).

Subcommands:
  seed BUCKET...            write the same store into every BUCKET through PutObject (boto3; BENCH_SEED_PROCS
                            processes of BENCH_SEED_THREADS threads); prints a one-line summary
  keys BUCKET OUT           one full listing (ListObjectsV2, no delimiter) of BENCH_PREFIX/ in BUCKET; writes the
                            keys relative to BENCH_PREFIX/, sorted, one a line, to OUT; prints the count
  expected OUT              writes the keys that must remain after retention (the model below), same format
  compare A B EXPECTED      compares the remaining keys of both stores with each other and with the model; prints
                            the differences; exit status 1 when the two stores differ or nothing was deleted
  ping BUCKET               waits (up to 60 s) until the bucket answers ListObjectsV2
  floor BUCKET EXPECTED     a reference delete (a yardstick, not a hard floor): deletes every seeded key not in EXPECTED (the model,
                            known in advance: no listing, no reading, no planning) with DeleteObjects, 1,000 keys
                            a request, 16 at a time (threads); prints the seconds the deletes took

The store reuses scripts/bench_catalog_seed.py (backup.info written by barman's own BackupInfo class, a small
data.tar, the `SEGMENT.00000028.backup` file barman-cloud-wal-archive uploads, 16-byte WAL bodies), with times
relative to BENCH_NOW (epoch seconds, the seeding time) instead of fixed dates, so that a recovery window means
something:
  - BENCH_BACKUPS (50) DONE backups, one a day; backup i (0 = oldest) begins at
    NOW - BENCH_BACKUPS days - 12 h + i days and ends 37.5 s later: the newest ended 1.5 days ago, the oldest
    50.5 days ago. Half a day off the day boundaries, so that the minutes between seeding and the two runs never
    move a backup across the window's start (now - 7 days).
  - BENCH_WALS (100,000) WAL segments on timeline 1, contiguous, archived evenly from one hour before the
    oldest backup began until NOW (about 44 s apart at the default size), 391 folders of 256.

What must remain under RECOVERY WINDOW OF 7 DAYS, minimum redundancy 1 (Barman's semantics, which openova
follows): the backups that ended inside the window (6), plus the newest one that ended before it (the base for
the window's start): 7 backups with their data.tar, backup.info and .backup file; the WAL from the begin_wal of
the oldest of them on. Everything else goes: 43 backups and the WAL before that begin_wal.

S3 subcommands read the endpoint and credentials from BENCH_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION.
"""

import datetime as dt
import os
import sys
import time

os.environ.setdefault("BENCH_BACKUPS", "50")
os.environ.setdefault("BENCH_WALS", "100000")
os.environ.setdefault("BENCH_PREFIX", "cnpg")
os.environ.setdefault("BENCH_SERVER", "bench-db")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_catalog_seed as base  # noqa: E402  (reads the BENCH_* variables above when imported)

WINDOW = dt.timedelta(days=int(os.environ.get("BENCH_WINDOW_DAYS", "7")))


def now():
    """The store's `now`: BENCH_NOW (epoch seconds), set by the bench when it seeds; else the current time."""
    v = os.environ.get("BENCH_NOW")
    t = int(v) if v else int(time.time())
    return dt.datetime.fromtimestamp(t, tz=base.UTC)


def place():
    """Moves bench_catalog_seed's fixed dates to times relative to now() (its functions read these globals)."""
    t = now()
    base.B0 = t - dt.timedelta(days=base.N_BACKUPS, hours=12) + dt.timedelta(microseconds=123456)
    base.T0 = base.B0 - dt.timedelta(hours=1)
    base.STEP = (t - base.T0) / base.N_WALS
    return t


def rel(key):
    return key[len(base.PREFIX) + 1 :]


# --- seeding ------------------------------------------------------------------------------------------------------
_work = None  # (bucket, key, body) items, inherited by the forked workers


def _put_range(bounds):
    from concurrent.futures import ThreadPoolExecutor

    lo, hi = bounds
    s3 = base.s3_client()
    threads = int(os.environ.get("BENCH_SEED_THREADS", "16"))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda o: s3.put_object(Bucket=o[0], Key=o[1], Body=o[2]), _work[lo:hi]))
    return hi - lo


def _put_all(items):
    """PutObject of every item, in BENCH_SEED_PROCS processes (boto3 is CPU-bound: one process is not enough)."""
    global _work
    import multiprocessing as mp

    if not items:
        return
    _work = items
    procs = max(1, int(os.environ.get("BENCH_SEED_PROCS", "4")))
    chunk = 2000
    bounds = [(i, min(i + chunk, len(items))) for i in range(0, len(items), chunk)]
    with mp.get_context("fork").Pool(procs) as pool:
        for _ in pool.imap_unordered(_put_range, bounds):
            pass
    _work = None


def seed(buckets):
    place()
    objs, backups = base.all_objects()
    # backup.info files go last, as barman-cloud uploads them.
    first = [(b, k, body) for b in buckets for k, body, _ in objs if not k.endswith("/backup.info")]
    last = [(b, k, body) for b in buckets for k, body, _ in objs if k.endswith("/backup.info")]
    _put_all(first)
    _put_all(last)
    where = "into s3://%s" % buckets[0] if len(buckets) == 1 else "into %d buckets" % len(buckets)
    print("%s; %s (%d objects in all)" % (base.summary(objs, backups), where, len(objs) * len(buckets)))


# --- checking -----------------------------------------------------------------------------------------------------
def list_keys(bucket, out):
    s3 = base.s3_client()
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base.PREFIX + "/"):
        keys += [rel(o["Key"]) for o in page.get("Contents", [])]
    keys.sort()
    with open(out, "w") as f:
        f.writelines(k + "\n" for k in keys)
    print(len(keys))


def model():
    """(all seeded keys, keys that must remain, description), relative to the prefix."""
    t = place()
    objs, backups = base.all_objects()
    por = t - WINDOW
    kept, found = [], False
    for b in sorted(backups, key=lambda b: b["id"], reverse=True):
        if found and len(kept) >= 1:  # minimum redundancy 1: already met by the window's backups
            break
        kept.append(b)
        if b["end"] < por:
            found = True
    horizon = min(b["begin_seg"] for b in kept)
    keep_ids = {b["id"] for b in kept}
    first_wal = base.wal_name(horizon)
    remain = []
    for k, _, _ in objs:
        r = rel(k)
        if "/base/" in k:
            if r.split("/")[2] in keep_ids:
                remain.append(r)
        elif r.rsplit("/", 1)[1][:24] >= first_wal:  # segments and .backup files from the horizon on
            remain.append(r)
    desc = "%d backups kept (%s .. %s), WAL from %s on" % (
        len(kept),
        min(keep_ids),
        max(keep_ids),
        first_wal,
    )
    return sorted(rel(k) for k, _, _ in objs), sorted(remain), desc


def expected(out):
    seeded, remain, desc = model()
    with open(out, "w") as f:
        f.writelines(k + "\n" for k in remain)
    print(
        "%s: %d of %d keys remain, %d deleted"
        % (desc, len(remain), len(seeded), len(seeded) - len(remain))
    )


def read(path):
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def show(label, keys, limit=20):
    print("  %s: %d" % (label, len(keys)))
    for k in sorted(keys)[:limit]:
        print("    " + k)
    if len(keys) > limit:
        print("    ... and %d more" % (len(keys) - limit))


def compare(a_path, b_path, exp_path):
    a, b, e = set(read(a_path)), set(read(b_path)), set(read(exp_path))
    seeded, _, _ = model()
    ok = True
    if a == b:
        print("same remaining keys in both stores: %d (of %d seeded)" % (len(a), len(seeded)))
    else:
        ok = False
        print("MISMATCH: the two stores hold different keys after retention")
        show("only after barman-cloud-backup-delete (openova deleted them, barman kept them)", a - b)
        show("only after openova retention (barman deleted them, openova kept them)", b - a)
    if len(b) >= len(seeded) or len(a) >= len(seeded):
        ok = False
        print("MISMATCH: nothing was deleted from %s" % ("either store" if a == b else "one store"))
    for label, got in (("barman", a), ("openova", b)):
        if got != e:
            print("note: %s's remaining keys differ from the model (scripts/bench_retention_seed.py):" % label)
            show("kept, not in the model", got - e)
            show("deleted, in the model", e - got)
    return 0 if ok else 1


def floor(bucket, exp_path):
    import time
    from concurrent.futures import ThreadPoolExecutor

    every, _, _ = model()
    keep = set(read(exp_path))
    gone = sorted(base.PREFIX + "/" + k for k in every if k not in keep)
    batches = [gone[i : i + 1000] for i in range(0, len(gone), 1000)]
    s3 = base.s3_client()

    def delete(batch):
        r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        if r.get("Errors"):
            raise RuntimeError("DeleteObjects errors: %r" % r["Errors"][:3])

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(delete, batches))
    print("%.3f %d" % (time.monotonic() - t0, len(gone)))


def main(argv):
    cmd, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if cmd == "seed" and args:
        seed(args)
    elif cmd == "keys" and len(args) == 2:
        list_keys(*args)
    elif cmd == "expected" and len(args) == 1:
        expected(args[0])
    elif cmd == "compare" and len(args) == 3:
        return compare(*args)
    elif cmd == "floor" and len(args) == 2:
        floor(*args)
    elif cmd == "ping" and len(args) == 1:
        return base.ping(args[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
