use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to a store. Each message names the endpoint, bucket or key and says
/// what to check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    BadUrl(#[from] crate::location::BadUrl),
    #[error(
        "cannot reach the S3 endpoint {endpoint}: {detail} (check the endpoint URL, \
         storage.endpoint or OPENOVA_S3_ENDPOINT, and the network)"
    )]
    Unreachable { endpoint: String, detail: String },
    #[error(
        "the S3 endpoint {endpoint} refused the credentials ({code}) for bucket '{bucket}': check \
         AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and that the key may access this bucket"
    )]
    Denied {
        endpoint: String,
        bucket: String,
        code: String,
    },
    #[error(
        "the folder {0} does not exist (check the file:// URL; a typo reads as an empty archive otherwise)"
    )]
    NoSuchFolder(PathBuf),
    #[error("bucket '{bucket}' does not exist on {endpoint} (check storage.url)")]
    NoSuchBucket { endpoint: String, bucket: String },
    #[error(
        "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile)"
    )]
    NoCredentials,
    /// A call that failed on every attempt it was allowed (boxed: it is the largest variant).
    #[error(transparent)]
    GaveUp(Box<GaveUp>),
    #[error(transparent)]
    BadLimit(#[from] crate::location::BadLimit),
    #[error("object '{key}' not found in {url}")]
    NotFound { url: String, key: String },
    #[error("S3 {op} of '{key}' on {endpoint} failed: {detail}")]
    Service {
        op: &'static str,
        endpoint: String,
        key: String,
        detail: String,
        retryable: bool,
    },
    #[error("{op} {path}: {cause}")]
    Io {
        op: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
}

impl Error {
    /// Whether trying again later may succeed (a 5xx, a timeout, a dropped connection).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::GaveUp { .. } => true,
            Self::Service { retryable, .. } => *retryable,
            _ => false,
        }
    }

    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// A store call that failed on every attempt it was allowed: what, where, how often, and what to
/// check.
#[derive(Debug, thiserror::Error)]
#[error("S3 {op} of '{key}' on {endpoint} failed after {attempts} in {took}: {what} ({hint})")]
pub struct GaveUp {
    pub op: &'static str,
    pub endpoint: String,
    pub key: String,
    /// `1 attempt`, `3 attempts`.
    pub attempts: String,
    pub took: String,
    pub what: String,
    pub hint: &'static str,
    pub throttled: bool,
}
