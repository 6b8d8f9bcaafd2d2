//! `file:///dir`: a store on a local folder. Keys are relative paths; a write goes to a temporary
//! file first and is renamed into place, so a reader never sees half an object.

use super::{Body, DirListing, Error, ObjectMeta, ObjectStore, Result, StorageUrl};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Temporary files of an unfinished put carry this suffix and are never listed.
const TMP_SUFFIX: &str = ".openova-tmp";

pub struct FsStore {
    url: StorageUrl,
    root: PathBuf,
}

impl FsStore {
    #[must_use]
    pub fn new(url: StorageUrl) -> Self {
        let root = match &url {
            StorageUrl::File { root } => root.clone(),
            StorageUrl::S3 { .. } => PathBuf::from("/nonexistent"),
        };
        Self { url, root }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn meta(&self, path: &Path, md: &std::fs::Metadata) -> ObjectMeta {
        let key = path
            .strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let last_modified = md.modified().ok().map(DateTime::<Utc>::from);
        ObjectMeta {
            key,
            size: md.len(),
            last_modified,
        }
    }

    fn not_found(&self, key: &str) -> Error {
        Error::NotFound {
            url: self.url.to_string(),
            key: key.to_string(),
        }
    }

    fn io(&self, op: &'static str, path: &Path, e: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.to_path_buf(),
            cause: e,
        }
    }

    /// Walks `dir` (its key `rel`, ending in `/` or empty at the root; recursively when `deep`),
    /// collecting objects whose key starts with `prefix`. Only matching files are stat'ed: the
    /// entry type comes with the folder listing itself.
    fn walk(
        &self,
        dir: &Path,
        rel: &str,
        prefix: &str,
        deep: bool,
        out: &mut DirListing,
    ) -> Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            // A prefix through a missing folder, or through an object, is just empty.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(self.io("reading folder", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| self.io("reading folder", dir, e))?;
            let name = entry.file_name();
            let key = format!("{rel}{}", name.to_string_lossy());
            if !key.starts_with(prefix) && !prefix.starts_with(&key) {
                continue;
            }
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| self.io("reading", &path, e))?;
            if kind.is_dir() {
                let key = format!("{key}/");
                // A folder on the way to the prefix (or the prefix itself) is walked through;
                // one below the prefix is either walked (deep) or reported as a "folder".
                if prefix.starts_with(&key) || (deep && key.starts_with(prefix)) {
                    self.walk(&path, &key, prefix, deep, out)?;
                } else if key.starts_with(prefix) {
                    out.dirs.push(key);
                }
            } else if key.starts_with(prefix) && !key.ends_with(TMP_SUFFIX) {
                let md = entry.metadata().map_err(|e| self.io("reading", &path, e))?;
                out.objects.push(ObjectMeta {
                    key,
                    size: md.len(),
                    last_modified: md.modified().ok().map(DateTime::<Utc>::from),
                });
            }
        }
        Ok(())
    }

    /// S3 has no folders: once its last object goes, a "folder" is gone. Remove the empty
    /// directories a delete leaves, up to the root, so listings agree with S3.
    fn prune_empty_parents(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&self.root) && *d != self.root) {
            // Fails (and stops) at the first folder that still holds something.
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    fn list_blocking(&self, prefix: &str, deep: bool) -> Result<DirListing> {
        // A missing root is a wrong URL, as a missing bucket is on S3; a missing prefix inside it
        // is just empty.
        if !self.root.is_dir() {
            return Err(Error::NoSuchFolder(self.root.clone()));
        }
        let mut out = DirListing::default();
        // Straight to the prefix's folder: starting at the root and walking down would read
        // (and once stat'ed) every folder on the way, for every listing (issue 14).
        let folder = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
        // Keys never hold `.`, `..` or empty components (nor start with `/`): such a prefix
        // matches nothing, and must not lead out of the root.
        if folder
            .split_terminator('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Ok(out);
        }
        self.walk(&self.root.join(folder), folder, prefix, deep, &mut out)?;
        out.objects.sort_by(|a, b| a.key.cmp(&b.key));
        out.dirs.sort();
        Ok(out)
    }
}

#[async_trait]
impl ObjectStore for FsStore {
    fn url(&self) -> &StorageUrl {
        &self.url
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // Local folders are fast enough to walk inline; no blocking pool needed.
        self.list_blocking(prefix, true).map(|l| l.objects)
    }

    async fn list_dir(&self, prefix: &str) -> Result<DirListing> {
        self.list_blocking(prefix, false)
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key);
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.not_found(key)),
            Err(e) => Err(self.io("reading", &path, e)),
        }
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Body> {
        let path = self.path(key);
        (|| {
            let mut f = std::fs::File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => self.not_found(key),
                _ => self.io("opening", &path, e),
            })?;
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| self.io("seeking", &path, e))?;
            // Sized up front: growing by doubling would copy a large range several times.
            let mut buf = Vec::with_capacity(usize::try_from(len.min(64 << 20)).unwrap_or(0));
            f.take(len)
                .read_to_end(&mut buf)
                .map_err(|e| self.io("reading", &path, e))?;
            Ok(Body::from(Bytes::from(buf)))
        })()
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        let path = self.path(key);
        let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", path.display()));
        let dir = path.parent().unwrap_or(&self.root);
        let mkdir = || async {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| self.io("creating", dir, e))
        };
        mkdir().await?;
        if let Err(e) = tokio::fs::write(&tmp, &body).await {
            // A concurrent delete may have pruned the folder just created: create it once more.
            mkdir().await?;
            tokio::fs::write(&tmp, &body)
                .await
                .map_err(|_| self.io("writing", &tmp, e))?;
        }
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| self.io("renaming", &tmp, e))
    }

    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool> {
        let path = self.path(key);
        let tmp = PathBuf::from(format!(
            "{}.{}{TMP_SUFFIX}",
            path.display(),
            std::process::id()
        ));
        self.put(
            &tmp.strip_prefix(&self.root)
                .unwrap_or(&tmp)
                .to_string_lossy(),
            body,
        )
        .await?;
        // A hard link fails when the target exists: an atomic create-if-absent on POSIX.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.io("creating", &path, e)),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            let path = self.path(key);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => self.prune_empty_parents(&path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("deleting", &path, e)),
            }
        }
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key);
        match tokio::fs::metadata(&path).await {
            Ok(md) if md.is_file() => Ok(Some(self.meta(&path, &md))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("reading", &path, e)),
        }
    }
}
