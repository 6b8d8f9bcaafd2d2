#!/usr/bin/env python3
"""Velero-format fixture for scripts/demo.

This is a FIXTURE that follows Velero's object-store layout; it is NOT Velero. Velero needs a
Kubernetes cluster, which the demo does not have. It writes, for each backup NAME of one schedule,
the objects Velero leaves in a backup storage location (vmware-tanzu/velero
pkg/persistence/object_store_layout.go; summarised in DESIGN.md, "Velero, under s3://BUCKET/PREFIX/"),
the same way tests/support/velero_fixture.rs does:

  PREFIX/backups/NAME/velero-backup.json             the velero.io/v1 Backup object, plain JSON
  PREFIX/backups/NAME/NAME.tar.gz                    metadata/version + resources/GROUP_RESOURCE/...
  PREFIX/backups/NAME/NAME-logs.gz                   logrus text lines
  PREFIX/backups/NAME/NAME-resource-list.json.gz     {"GROUP/VERSION/Kind": ["ns/name", ...]}
  PREFIX/backups/NAME/NAME-results.gz                {"warnings": {}, "errors": {}}
  PREFIX/backups/NAME/NAME-volumesnapshots.json.gz   []

Backups are taken at the last COUNT fires of a daily schedule at HOUR:00 UTC that ended before now
(each ran for about a minute), named like Velero names scheduled backups: SCHEDULE-YYYYMMDDHHMMSS.

Usage (S3 credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY):
  demo_velero_fixture.py --endpoint http://127.0.0.1:PORT --bucket demo --prefix velero \
      --schedule cluster-daily --hour 3 --count 2
Prints one line per uploaded object.
"""

import argparse
import gzip
import io
import json
import os
import sys
import tarfile
import uuid
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config

FORMAT_VERSION = "1.1.0"
TTL = "720h0m0s"  # Velero's default: 30 days
TTL_DELTA = timedelta(hours=720)


def go_time(t):
    """How Kubernetes (metav1.Time) writes a time: RFC 3339, seconds, Z."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def items():
    """(group_resource, namespace or None, object) for a small app in namespace `app`."""
    labels = {"app.kubernetes.io/name": "web"}
    out = [
        ("namespaces", None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}),
        (
            "deployments.apps",
            "app",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "app", "labels": labels},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                    },
                },
            },
        ),
        (
            "services",
            "app",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "app", "labels": labels},
                "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 80}]},
            },
        ),
        (
            "configmaps",
            "app",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "web-config", "namespace": "app"},
                "data": {"greeting": "hello"},
            },
        ),
    ]
    for i in range(2):
        out.append(
            (
                "pods",
                "app",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"web-{i}", "namespace": "app", "labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            )
        )
    return out


def scoped(ns, name):
    return f"namespaces/{ns}/{name}.json" if ns else f"cluster/{name}.json"


def tarball(started, objs):
    """NAME.tar.gz: metadata/version, each item at its unversioned path and again under
    VERSION-preferredversion/ (regular files only, mode 0755, no directory entries, as Velero)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:

        def add(path, body):
            info = tarfile.TarInfo(path)
            info.size = len(body)
            info.mode = 0o755
            info.mtime = int(started.timestamp())
            tar.addfile(info, io.BytesIO(body))

        add("metadata/version", FORMAT_VERSION.encode())
        for gr, ns, obj in objs:
            body = json.dumps(obj).encode()
            path = scoped(ns, obj["metadata"]["name"])
            version = obj["apiVersion"].rsplit("/", 1)[-1]
            add(f"resources/{gr}/{path}", body)
            add(f"resources/{gr}/{version}-preferredversion/{path}", body)
    return buf.getvalue()


def backup_json(name, schedule, started, completed, count):
    return {
        "kind": "Backup",
        "apiVersion": "velero.io/v1",
        "metadata": {
            "name": name,
            "namespace": "velero",
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "velero-backup/" + name)),
            "resourceVersion": "48213",
            "generation": 6,
            "creationTimestamp": go_time(started),
            "labels": {"velero.io/schedule-name": schedule, "velero.io/storage-location": "default"},
            "annotations": {
                "velero.io/resource-timeout": "10m0s",
                "velero.io/source-cluster-k8s-gitversion": "v1.31.4+k3s1",
                "velero.io/source-cluster-k8s-major-version": "1",
                "velero.io/source-cluster-k8s-minor-version": "31",
            },
        },
        "spec": {
            "csiSnapshotTimeout": "10m0s",
            "defaultVolumesToFsBackup": False,
            "hooks": {},
            "includedNamespaces": ["*"],
            "itemOperationTimeout": "4h0m0s",
            "metadata": {},
            "snapshotMoveData": False,
            "storageLocation": "default",
            "ttl": TTL,
            "volumeSnapshotLocations": ["default"],
        },
        "status": {
            "formatVersion": FORMAT_VERSION,
            "hookStatus": {},
            "phase": "Completed",
            "version": 1,
            "startTimestamp": go_time(started),
            "completionTimestamp": go_time(completed),
            "expiration": go_time(started + TTL_DELTA),
            "progress": {"totalItems": count, "itemsBackedUp": count},
        },
    }


def resource_list(objs):
    m = {}
    for _, ns, obj in objs:
        key = f"{obj['apiVersion']}/{obj['kind']}"
        name = obj["metadata"]["name"]
        m.setdefault(key, []).append(f"{ns}/{name}" if ns else name)
    return {k: sorted(v) for k, v in sorted(m.items())}


def logs(name, started, objs):
    t = go_time(started)
    lines = [
        f'time="{t}" level=info msg="Setting up backup temp file" backup=velero/{name}',
        f'time="{t}" level=info msg="Starting backup" backup=velero/{name}',
    ]
    for k, (gr, ns, obj) in enumerate(objs, 1):
        lines.append(
            f'time="{t}" level=info msg="Backed up {k} items out of an estimated total of {len(objs)}" '
            f"backup=velero/{name} namespace={ns or ''} name={obj['metadata']['name']} resource={gr}"
        )
    lines.append(f'time="{t}" level=info msg="Backup completed" backup=velero/{name} phase=Completed')
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--prefix", default="velero")
    ap.add_argument("--schedule", default="cluster-daily")
    ap.add_argument("--hour", type=int, default=3, help="the schedule's hour (UTC), minute 0")
    ap.add_argument("--count", type=int, default=2)
    a = ap.parse_args()

    s3 = boto3.client(
        "s3",
        endpoint_url=a.endpoint,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "auto"),
        config=Config(s3={"addressing_style": "path"}),
    )
    now = datetime.now(timezone.utc).replace(microsecond=0)
    run_time = timedelta(seconds=47)
    # The newest fire whose backup had finished by now, then the ones before it, a day apart.
    fire = now.replace(hour=a.hour, minute=0, second=0)
    while fire + run_time + timedelta(seconds=5) > now:
        fire -= timedelta(days=1)
    objs = items()
    prefix = a.prefix.strip("/")
    for k in reversed(range(a.count)):
        fired = fire - timedelta(days=k)
        name = f"{a.schedule}-{fired.strftime('%Y%m%d%H%M%S')}"
        started = fired + timedelta(seconds=2)
        completed = started + run_time
        files = [
            ("velero-backup.json", json.dumps(backup_json(name, a.schedule, started, completed, len(objs)), indent=2).encode()),
            (f"{name}.tar.gz", tarball(started, objs)),
            (f"{name}-logs.gz", gzip.compress(logs(name, started, objs).encode())),
            (f"{name}-resource-list.json.gz", gzip.compress(json.dumps(resource_list(objs)).encode())),
            (f"{name}-results.gz", gzip.compress(json.dumps({"errors": {}, "warnings": {}}).encode())),
            (f"{name}-volumesnapshots.json.gz", gzip.compress(b"[]")),
        ]
        for f, body in files:
            key = f"{prefix}/backups/{name}/{f}" if prefix else f"backups/{name}/{f}"
            s3.put_object(Bucket=a.bucket, Key=key, Body=body)
            print(f"  s3://{a.bucket}/{key}  ({len(body)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
