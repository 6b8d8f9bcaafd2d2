//! A **fixture writer** for Velero backups: it writes, into a test S3 server, the objects that Velero
//! leaves in a backup storage location, following Velero's published object-store layout
//! (vmware-tanzu/velero `pkg/persistence/object_store_layout.go`, `pkg/persistence/object_store.go`,
//! the backup tarball as written by `pkg/backup`; summarised in DESIGN.md, "Velero, under
//! s3://BUCKET/PREFIX/"). It is **not Velero**: Velero needs a Kubernetes cluster, which cannot run
//! on these machines. Everything it writes is what Velero writes, field for field where openova reads
//! it, so a test of openova's Velero catalog exercises the real format:
//!
//! - `backups/NAME/velero-backup.json`: the `velero.io/v1` `Backup` object as plain JSON (labels
//!   `velero.io/schedule-name` and `velero.io/storage-location`, `spec.ttl`, `spec.storageLocation`,
//!   included/excluded namespaces, `status.phase`, `startTimestamp`, `completionTimestamp`,
//!   `expiration` = start + ttl, `errors`/`warnings` (omitted when 0, as Go's `omitempty` does),
//!   `progress`, `formatVersion` `1.1.0`, `version` 1);
//! - `backups/NAME/NAME.tar.gz`: a gzip tarball holding `metadata/version` (`1.1.0`) and every item at
//!   `resources/GROUP_RESOURCE/namespaces/NS/NAME.json` or `resources/GROUP_RESOURCE/cluster/NAME.json`,
//!   written a second time under `resources/GROUP_RESOURCE/VERSION-preferredversion/...` (the preferred
//!   version, as Velero writes it), and optionally under other `resources/GROUP_RESOURCE/VERSION/...`;
//! - `NAME-logs.gz`, `NAME-resource-list.json.gz` (`{"GROUP/VERSION/Kind":["ns/name", ...]}`),
//!   `NAME-results.gz` (`{"warnings":{...},"errors":{...}}`), `NAME-volumesnapshots.json.gz` (`[]`).
//!
//! Tests can leave companions out ([`VeleroBackupFixture::without`]) and replace
//! `velero-backup.json` with arbitrary bytes ([`VeleroBackupFixture::raw_backup_json`]) to play
//! broken or half-written buckets.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

use super::S3Server;

/// The tarball format version Velero has written since 1.x (`metadata/version`, `status.formatVersion`).
pub const FORMAT_VERSION: &str = "1.1.0";

/// One Kubernetes object inside the backup tarball.
#[derive(Clone, Debug)]
pub struct FixtureItem {
    /// `pods`, `deployments.apps`, `customresourcedefinitions.apiextensions.k8s.io`, ...
    pub group_resource: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub json: Value,
}

impl FixtureItem {
    /// `apiVersion` of the object (`v1`, `apps/v1`, ...); `v1` when the JSON has none.
    pub fn api_version(&self) -> String {
        self.json["apiVersion"].as_str().unwrap_or("v1").to_string()
    }

    /// The version part of `apiVersion` (`v1` for `apps/v1`).
    pub fn version(&self) -> String {
        let av = self.api_version();
        av.rsplit('/').next().unwrap_or("v1").to_string()
    }

    /// `kind` of the object; derived from the resource name when the JSON has none.
    pub fn kind(&self) -> String {
        match self.json["kind"].as_str() {
            Some(k) => k.to_string(),
            None => {
                let r = self.group_resource.split('.').next().unwrap_or_default();
                let singular = r.strip_suffix('s').unwrap_or(r);
                let mut c = singular.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            }
        }
    }

    /// `namespaces/NS/NAME.json` or `cluster/NAME.json`.
    fn scoped_path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("namespaces/{ns}/{}.json", self.name),
            None => format!("cluster/{}.json", self.name),
        }
    }

    /// The object as Velero stores it: the given JSON, with `apiVersion`, `kind`, `metadata.name`
    /// and `metadata.namespace` filled in when absent.
    pub fn full_json(&self) -> Value {
        let mut v = if self.json.is_object() {
            self.json.clone()
        } else {
            json!({})
        };
        let obj = v.as_object_mut().expect("object");
        obj.entry("apiVersion")
            .or_insert_with(|| json!(self.api_version()));
        obj.entry("kind").or_insert_with(|| json!(self.kind()));
        let meta = obj.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            m.entry("name").or_insert_with(|| json!(self.name));
            if let Some(ns) = &self.namespace {
                m.entry("namespace").or_insert_with(|| json!(ns));
            }
        }
        v
    }
}

/// One Velero backup as it sits in a backup storage location; see the module documentation.
#[derive(Clone, Debug)]
pub struct VeleroBackupFixture {
    name: String,
    phase: String,
    schedule: Option<String>,
    storage_location: String,
    started: Option<DateTime<Utc>>,
    completed: Option<DateTime<Utc>>,
    ttl: String,
    errors: u64,
    warnings: u64,
    failure_reason: Option<String>,
    included_namespaces: Vec<String>,
    excluded_namespaces: Vec<String>,
    items: Vec<FixtureItem>,
    /// Extra non-preferred versions written per group-resource (`resources/GR/VERSION/...`).
    other_versions: BTreeMap<String, Vec<String>>,
    items_backed_up: Option<u64>,
    total_items: Option<u64>,
    without: BTreeSet<String>,
    raw_backup_json: Option<Vec<u8>>,
}

impl VeleroBackupFixture {
    /// A `Completed` backup named `name`, no schedule, location `default`, Velero's default TTL
    /// (`720h0m0s`), all namespaces, no items, no times (set them with [`Self::started`] and
    /// [`Self::completed`]).
    pub fn new(name: &str) -> Self {
        VeleroBackupFixture {
            name: name.to_string(),
            phase: "Completed".into(),
            schedule: None,
            storage_location: "default".into(),
            started: None,
            completed: None,
            ttl: "720h0m0s".into(),
            errors: 0,
            warnings: 0,
            failure_reason: None,
            included_namespaces: vec!["*".into()],
            excluded_namespaces: Vec::new(),
            items: Vec::new(),
            other_versions: BTreeMap::new(),
            items_backed_up: None,
            total_items: None,
            without: BTreeSet::new(),
            raw_backup_json: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `status.phase` (`Completed`, `PartiallyFailed`, `Failed`, `InProgress`, `Finalizing`, ...).
    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = phase.to_string();
        self
    }

    /// The Schedule that created it: label `velero.io/schedule-name`.
    pub fn schedule(mut self, schedule: &str) -> Self {
        self.schedule = Some(schedule.to_string());
        self
    }

    /// `spec.storageLocation` and label `velero.io/storage-location` (default `default`).
    pub fn storage_location(mut self, location: &str) -> Self {
        self.storage_location = location.to_string();
        self
    }

    /// `status.startTimestamp` (and the base of `status.expiration`).
    pub fn started(mut self, t: DateTime<Utc>) -> Self {
        self.started = Some(t);
        self
    }

    /// `status.completionTimestamp`.
    pub fn completed(mut self, t: DateTime<Utc>) -> Self {
        self.completed = Some(t);
        self
    }

    /// `spec.ttl`, a Go duration (`720h0m0s`).
    pub fn ttl(mut self, ttl: &str) -> Self {
        go_duration(ttl).unwrap_or_else(|| panic!("ttl {ttl:?} is not a Go duration"));
        self.ttl = ttl.to_string();
        self
    }

    /// `status.errors` (and as many messages in `NAME-results.gz`).
    pub fn errors(mut self, n: u64) -> Self {
        self.errors = n;
        self
    }

    /// `status.warnings` (and as many messages in `NAME-results.gz`).
    pub fn warnings(mut self, n: u64) -> Self {
        self.warnings = n;
        self
    }

    /// `status.failureReason`.
    pub fn failure_reason(mut self, why: &str) -> Self {
        self.failure_reason = Some(why.to_string());
        self
    }

    pub fn included_namespaces(mut self, ns: &[&str]) -> Self {
        self.included_namespaces = ns.iter().map(|s| (*s).to_string()).collect();
        self
    }

    pub fn excluded_namespaces(mut self, ns: &[&str]) -> Self {
        self.excluded_namespaces = ns.iter().map(|s| (*s).to_string()).collect();
        self
    }

    /// One object in the tarball: `group_resource` like `pods` or `deployments.apps`, `namespace`
    /// `None` for cluster-scoped objects. Its version directory comes from `json["apiVersion"]`.
    pub fn item(
        mut self,
        group_resource: &str,
        namespace: Option<&str>,
        name: &str,
        json: Value,
    ) -> Self {
        self.items.push(FixtureItem {
            group_resource: group_resource.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            json,
        });
        self
    }

    /// Also writes every item of `group_resource` under the non-preferred `resources/GR/VERSION/...`
    /// (what Velero does with the `EnableAPIGroupVersions` feature).
    pub fn other_version(mut self, group_resource: &str, version: &str) -> Self {
        self.other_versions
            .entry(group_resource.to_string())
            .or_default()
            .push(version.to_string());
        self
    }

    /// `status.progress.itemsBackedUp` (default: the number of items).
    pub fn items_backed_up(mut self, n: u64) -> Self {
        self.items_backed_up = Some(n);
        self
    }

    /// `status.progress.totalItems` (default: the number of items).
    pub fn total_items(mut self, n: u64) -> Self {
        self.total_items = Some(n);
        self
    }

    /// Leaves out the object `file` of the backup folder (`NAME.tar.gz`, `NAME-logs.gz`,
    /// `velero-backup.json`, ...). [`Self::objects`] panics if no such object would be written.
    pub fn without(mut self, file: &str) -> Self {
        self.without.insert(file.to_string());
        self
    }

    /// Writes these bytes as `velero-backup.json` instead of the Backup object (malformed files).
    pub fn raw_backup_json(mut self, bytes: &[u8]) -> Self {
        self.raw_backup_json = Some(bytes.to_vec());
        self
    }

    /// The items given with [`Self::item`].
    pub fn items(&self) -> &[FixtureItem] {
        &self.items
    }

    /// `status.expiration` = start + ttl (`None` without a start time).
    pub fn expiration(&self) -> Option<DateTime<Utc>> {
        Some(self.started? + go_duration(&self.ttl)?)
    }

    /// `backups/NAME/` relative to the Velero prefix.
    pub fn dir(&self) -> String {
        format!("backups/{}/", self.name)
    }

    /// The `velero.io/v1` Backup object, as Velero uploads it as `velero-backup.json`.
    pub fn backup_json(&self) -> Value {
        let created = self.started.unwrap_or_else(|| {
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
        });
        let mut labels = serde_json::Map::new();
        if let Some(s) = &self.schedule {
            labels.insert("velero.io/schedule-name".into(), json!(s));
        }
        labels.insert(
            "velero.io/storage-location".into(),
            json!(self.storage_location),
        );
        let mut spec = json!({
            "csiSnapshotTimeout": "10m0s",
            "defaultVolumesToFsBackup": false,
            "hooks": {},
            "includedNamespaces": self.included_namespaces,
            "itemOperationTimeout": "4h0m0s",
            "metadata": {},
            "snapshotMoveData": false,
            "storageLocation": self.storage_location,
            "ttl": self.ttl,
            "volumeSnapshotLocations": ["default"],
        });
        if !self.excluded_namespaces.is_empty() {
            spec["excludedNamespaces"] = json!(self.excluded_namespaces);
        }
        let count = self.items.len() as u64;
        let mut status = json!({
            "formatVersion": FORMAT_VERSION,
            "hookStatus": {},
            "phase": self.phase,
            "version": 1,
            "progress": {
                "totalItems": self.total_items.unwrap_or(count),
                "itemsBackedUp": self.items_backed_up.unwrap_or(count),
            },
        });
        if let Some(t) = self.started {
            status["startTimestamp"] = json!(go_time(t));
        }
        if let Some(t) = self.completed {
            status["completionTimestamp"] = json!(go_time(t));
        }
        if let Some(t) = self.expiration() {
            status["expiration"] = json!(go_time(t));
        }
        // Go's `omitempty`: zero counts are not written.
        if self.errors > 0 {
            status["errors"] = json!(self.errors);
        }
        if self.warnings > 0 {
            status["warnings"] = json!(self.warnings);
        }
        if let Some(r) = &self.failure_reason {
            status["failureReason"] = json!(r);
        }
        json!({
            "kind": "Backup",
            "apiVersion": "velero.io/v1",
            "metadata": {
                "name": self.name,
                "namespace": "velero",
                "uid": uid_of(&self.name),
                "resourceVersion": "48213",
                "generation": 6,
                "creationTimestamp": go_time(created),
                "labels": labels,
                "annotations": {
                    "velero.io/resource-timeout": "10m0s",
                    "velero.io/source-cluster-k8s-gitversion": "v1.31.4+k3s1",
                    "velero.io/source-cluster-k8s-major-version": "1",
                    "velero.io/source-cluster-k8s-minor-version": "31",
                },
            },
            "spec": spec,
            "status": status,
        })
    }

    /// `NAME.tar.gz`: `metadata/version`, then each item at its unversioned path and again under
    /// `VERSION-preferredversion/` (and under each extra version of [`Self::other_version`]).
    pub fn tarball(&self) -> Vec<u8> {
        let mtime = self
            .started
            .map(|t| t.timestamp().max(0) as u64)
            .unwrap_or(0);
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut add = |path: &str, body: &[u8]| {
            // Velero writes regular files only, mode 0755, no directory entries.
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(body.len() as u64);
            h.set_mode(0o755);
            h.set_mtime(mtime);
            h.set_cksum();
            tar.append_data(&mut h, path, body)
                .unwrap_or_else(|e| panic!("tar entry {path}: {e}"));
        };
        add("metadata/version", FORMAT_VERSION.as_bytes());
        for item in &self.items {
            let body = serde_json::to_vec(&item.full_json()).unwrap();
            let gr = &item.group_resource;
            let scoped = item.scoped_path();
            add(&format!("resources/{gr}/{scoped}"), &body);
            add(
                &format!(
                    "resources/{gr}/{}-preferredversion/{scoped}",
                    item.version()
                ),
                &body,
            );
            for v in self.other_versions.get(gr).into_iter().flatten() {
                let mut other = item.full_json();
                let group = item
                    .api_version()
                    .rsplit_once('/')
                    .map(|(g, _)| g.to_string());
                other["apiVersion"] = json!(match group {
                    Some(g) => format!("{g}/{v}"),
                    None => v.clone(),
                });
                add(
                    &format!("resources/{gr}/{v}/{scoped}"),
                    &serde_json::to_vec(&other).unwrap(),
                );
            }
        }
        tar.into_inner()
            .and_then(flate2::write::GzEncoder::finish)
            .expect("finish the backup tarball")
    }

    /// The content of `NAME-resource-list.json.gz`: `{"GROUP/VERSION/Kind": ["ns/name" | "name"]}`,
    /// each list sorted.
    pub fn resource_list(&self) -> Value {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for i in &self.items {
            let key = format!("{}/{}", i.api_version(), i.kind());
            let entry = match &i.namespace {
                Some(ns) => format!("{ns}/{}", i.name),
                None => i.name.clone(),
            };
            m.entry(key).or_default().insert(entry);
        }
        json!(m)
    }

    /// The content of `NAME-results.gz`: one message per error and per warning.
    pub fn results(&self) -> Value {
        let msgs = |what: &str, n: u64| -> Value {
            if n == 0 {
                return json!({});
            }
            let list: Vec<String> = (1..=n)
                .map(|k| format!("fixture {what} {k} of backup {}", self.name))
                .collect();
            json!({ "velero": list })
        };
        json!({ "errors": msgs("error", self.errors), "warnings": msgs("warning", self.warnings) })
    }

    /// The content of `NAME-logs.gz` (logrus text lines, like Velero's backup log).
    pub fn logs(&self) -> String {
        let t = self.started.map(go_time).unwrap_or_default();
        let mut log = format!(
            "time=\"{t}\" level=info msg=\"Setting up backup temp file\" backup=velero/{n} logSource=\"pkg/controller/backup_controller.go:618\"\n\
             time=\"{t}\" level=info msg=\"Starting backup\" backup=velero/{n} logSource=\"pkg/backup/backup.go:288\"\n",
            n = self.name
        );
        for (k, i) in self.items.iter().enumerate() {
            log.push_str(&format!(
                "time=\"{t}\" level=info msg=\"Backed up {} items out of an estimated total of {}\" backup=velero/{} logSource=\"pkg/backup/backup.go:500\" namespace={} name={} resource={}\n",
                k + 1,
                self.items.len(),
                self.name,
                i.namespace.as_deref().unwrap_or(""),
                i.name,
                i.group_resource
            ));
        }
        for k in 0..self.errors {
            log.push_str(&format!(
                "time=\"{t}\" level=error msg=\"fixture error {}\" backup=velero/{}\n",
                k + 1,
                self.name
            ));
        }
        log.push_str(&format!(
            "time=\"{t}\" level=info msg=\"Backup completed\" backup=velero/{} phase={}\n",
            self.name, self.phase
        ));
        log
    }

    /// Every object of this backup, keys relative to the Velero prefix (`backups/NAME/...`), minus
    /// those left out with [`Self::without`].
    pub fn objects(&self) -> Vec<(String, Vec<u8>)> {
        let n = &self.name;
        let backup_json = match &self.raw_backup_json {
            Some(raw) => raw.clone(),
            None => serde_json::to_vec_pretty(&self.backup_json()).unwrap(),
        };
        let all: Vec<(String, Vec<u8>)> = vec![
            ("velero-backup.json".into(), backup_json),
            (format!("{n}.tar.gz"), self.tarball()),
            (format!("{n}-logs.gz"), gzip(self.logs().as_bytes())),
            (
                format!("{n}-resource-list.json.gz"),
                gzip(&serde_json::to_vec(&self.resource_list()).unwrap()),
            ),
            (
                format!("{n}-results.gz"),
                gzip(&serde_json::to_vec(&self.results()).unwrap()),
            ),
            (format!("{n}-volumesnapshots.json.gz"), gzip(b"[]")),
        ];
        for w in &self.without {
            assert!(
                all.iter().any(|(f, _)| f == w),
                "without({w:?}): backup {n} has no such object (have {:?})",
                all.iter().map(|(f, _)| f).collect::<Vec<_>>()
            );
        }
        all.into_iter()
            .filter(|(f, _)| !self.without.contains(f))
            .map(|(f, body)| (format!("{}{f}", self.dir()), body))
            .collect()
    }

    /// Total bytes of [`Self::objects`].
    pub fn size(&self) -> u64 {
        self.objects().iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Uploads [`Self::objects`] under `prefix` (the Velero prefix in the bucket, e.g. `velero`),
    /// one PutObject per object, a few at a time.
    pub fn upload(&self, s3: &S3Server, prefix: &str) {
        let prefix = prefix.trim_matches('/');
        let objects = self.objects();
        std::thread::scope(|scope| {
            for (key, body) in &objects {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}/{key}")
                };
                scope.spawn(move || s3.put(&key, body));
            }
        });
    }
}

/// Uploads several backups (each [`VeleroBackupFixture::upload`]).
pub fn upload_all(s3: &S3Server, prefix: &str, backups: &[VeleroBackupFixture]) {
    std::thread::scope(|scope| {
        for b in backups {
            scope.spawn(move || b.upload(s3, prefix));
        }
    });
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// How Kubernetes (`metav1.Time`) writes a time: RFC 3339, seconds, `Z`.
pub fn go_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses a Go duration (`720h0m0s`, `24h`, `1h30m`, `90s`, `500ms`); `None` if malformed.
pub fn go_duration(s: &str) -> Option<TimeDelta> {
    if s == "0" {
        return Some(TimeDelta::zero());
    }
    let mut total = TimeDelta::zero();
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "h" => 3_600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += TimeDelta::nanoseconds((n * nanos_per) as i64);
    }
    Some(total)
}

/// A stable UUID-shaped uid for a name.
fn uid_of(name: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let a = h.finish();
    (a ^ 0x5bd1_e995).hash(&mut h);
    let b = h.finish();
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("720h0m0s"), Some(TimeDelta::days(30)));
        assert_eq!(go_duration("1h30m"), Some(TimeDelta::minutes(90)));
        assert_eq!(go_duration("500ms"), Some(TimeDelta::milliseconds(500)));
        assert_eq!(go_duration("30d"), None);
        assert_eq!(go_duration(""), None);
    }
}
