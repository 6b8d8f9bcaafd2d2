//! `S3Store`: aws-sdk-s3 set up for Cloudflare R2 and other S3-compatible stores.
//!
//! Two settings matter beyond the endpoint: request checksums are computed only when an operation
//! requires them (the SDK's default trailing CRC checksums are rejected or mis-stored by R2 and
//! others), and path-style addressing is used whenever a custom endpoint is set, since most
//! self-hosted stores (MinIO, Garage) do not serve virtual-hosted buckets by default.

use super::listxml;
use super::retry::{self, Budget, Call, Failed, Fault};
use super::{
    Body, Connection, DirListing, Error, ListPage, ObjectMeta, ObjectStore, Result, StorageUrl,
    Timeouts,
};
use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::list_objects_v2::{
    ListObjectsV2, ListObjectsV2Error, ListObjectsV2Output,
};
use aws_sdk_s3::primitives::{ByteStream, DateTimeFormat};
use aws_sdk_s3::types::{CommonPrefix, Delete, Object, ObjectIdentifier};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, Error as ErasedError, Output, OutputOrError,
};
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
use aws_smithy_runtime_api::client::ser_de::{DeserializeResponse, SharedResponseDeserializer};
use aws_smithy_types::config_bag::{ConfigBag, FrozenLayer};
use aws_smithy_types::timeout::TimeoutConfig;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Connection settings of an [`S3Store`], already resolved (no environment reads later).
#[derive(Clone)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    /// Static credentials (access key id, secret) instead of the default AWS chain; for callers
    /// that hold them already (tests, a mounted Secret read by the caller). Never logged.
    pub credentials: Option<(String, String)>,
    /// How long a request may wait; see [`Timeouts`].
    pub timeouts: Timeouts,
}

// Hand-written so that the secret can never reach a log line through `{:?}`.
impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("timeouts", &self.timeouts)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(id, _)| (id, "<redacted>")),
            )
            .finish()
    }
}

impl S3Options {
    /// Region defaults to `AWS_REGION`/`AWS_DEFAULT_REGION`, then `auto` (what R2 expects);
    /// path-style defaults to on when an endpoint is set.
    #[must_use]
    pub fn from_connection(conn: &Connection) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let region = conn
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"));
        // The SDK's own endpoint variables count too, so path-style follows them.
        let endpoint = conn
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        Self {
            region: region.unwrap_or_else(|| "auto".to_string()),
            path_style: conn.path_style.unwrap_or(endpoint.is_some()),
            endpoint,
            credentials: None,
            timeouts: Timeouts::default().with(&conn.limits),
        }
    }
}

pub struct S3Store {
    url: StorageUrl,
    bucket: String,
    prefix: String,
    endpoint: String,
    timeouts: Timeouts,
    budget: Budget,
    client: aws_sdk_s3::Client,
}

impl S3Store {
    /// Builds the client. Credentials come from the standard AWS chain (environment, profile,
    /// web identity), never from policy files.
    pub async fn connect(url: StorageUrl, opts: S3Options) -> Result<Self> {
        let StorageUrl::S3 { bucket, prefix } = &url else {
            return Err(crate::location::BadUrl {
                url: url.to_string(),
                why: "not an s3:// URL".into(),
            }
            .into());
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(opts.region.clone()));
        if let Some((id, secret)) = &opts.credentials {
            let creds =
                aws_sdk_s3::config::Credentials::new(id, secret, None, None, "openova-static");
            loader = loader.credentials_provider(creds);
        }
        let shared = loader.load().await;
        let t = opts.timeouts;
        // Each attempt is bounded here; retries, the call's bound and download stalls are
        // `retry`'s and `fetch`'s, so that every message can say what happened how often.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(t.connect)
            .read_timeout(t.attempt)
            .operation_attempt_timeout(t.attempt)
            .build();
        let mut cfg = aws_sdk_s3::config::Builder::from(&shared)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .force_path_style(opts.path_style);
        if let Some(ep) = &opts.endpoint {
            cfg = cfg.endpoint_url(ep);
        }
        let endpoint = opts
            .endpoint
            .clone()
            .or_else(|| shared.endpoint_url().map(str::to_string))
            .unwrap_or_else(|| format!("AWS S3 ({})", opts.region));
        Ok(Self {
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            endpoint,
            timeouts: t,
            budget: Budget::new(t.retries),
            client: aws_sdk_s3::Client::from_conf(cfg.build()),
            url,
        })
    }

    fn full(&self, key: &str) -> String {
        self.url.full_key(key)
    }

    fn relative(&self, full: &str) -> String {
        relative(full, &self.prefix)
    }

    /// Turns an SDK error into one that names the endpoint, bucket or key and says what to do.
    fn error<E>(&self, op: &'static str, key: &str, e: &SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let detail = DisplayErrorContext(e).to_string();
        let endpoint = self.endpoint.clone();
        let bucket = self.bucket.clone();
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().unwrap_or_default().to_string();
        match e {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                if detail.contains("credentials") {
                    Error::NoCredentials
                } else {
                    Error::Unreachable {
                        endpoint,
                        detail: root_cause(e),
                    }
                }
            }
            _ if code == "NoSuchBucket" => Error::NoSuchBucket { endpoint, bucket },
            _ if is_auth_code(&code) || status == Some(403) => {
                let code = if code.is_empty() {
                    "403 Forbidden".to_string()
                } else {
                    code
                };
                Error::Denied {
                    endpoint,
                    bucket,
                    code,
                }
            }
            _ if code == "NoSuchKey" || code == "NotFound" || status == Some(404) => {
                Error::NotFound {
                    url: self.url.to_string(),
                    key: key.to_string(),
                }
            }
            SdkError::ConstructionFailure(_) if detail.contains("credentials") => {
                Error::NoCredentials
            }
            _ => Error::Service {
                op,
                endpoint,
                key: key.to_string(),
                retryable: false,
                detail: if code.is_empty() {
                    short(&detail)
                } else {
                    format!("{code}: {}", e.message().unwrap_or(""))
                },
            },
        }
    }

    /// One attempt's failure: a fault worth another try, or a final error.
    fn classify<E>(&self, op: &'static str, key: &str, e: &SdkError<E, HttpResponse>) -> Failed
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().unwrap_or_default();
        let fault = match e {
            SdkError::TimeoutError(_) => Fault::NoAnswer(self.timeouts.attempt),
            SdkError::DispatchFailure(f) if f.is_timeout() => {
                Fault::NoAnswer(self.timeouts.attempt)
            }
            SdkError::DispatchFailure(_) => {
                let all = DisplayErrorContext(e).to_string();
                if all.contains("credentials") {
                    return Failed::Final(Error::NoCredentials);
                }
                let cause = root_cause(e);
                if all.contains("tcp connect error") || all.contains("dns error") {
                    Fault::Unreachable(cause)
                } else {
                    Fault::Connection(cause)
                }
            }
            SdkError::ResponseError(_) => {
                Fault::Connection(format!("the answer broke off: {}", root_cause(e)))
            }
            _ if is_throttling(code) || matches!(status, Some(429 | 503)) => Fault::Throttled {
                status: status.unwrap_or(503),
                code: if code.is_empty() { "SlowDown" } else { code }.to_string(),
            },
            // 501: the store does not implement the call; trying again will not change that.
            _ if status.is_some_and(|s| s >= 500 && s != 501) => Fault::Server {
                status: status.unwrap_or(500),
                code: if code.is_empty() { "(no code)" } else { code }.to_string(),
            },
            _ => return Failed::Final(self.error(op, key, e)),
        };
        Failed::Transient(fault)
    }

    /// Runs `attempt` with the retries of [`retry::run`], for messages named `op` of `key`.
    async fn call<T, F, Fut>(&self, op: &'static str, key: &str, attempt: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = std::result::Result<T, Failed>>,
    {
        let full = self.full(key);
        let call = Call {
            op,
            endpoint: &self.endpoint,
            key: &full,
            operation: self.timeouts.operation,
            budget: &self.budget,
        };
        retry::run(&call, attempt).await
    }

    /// One request, bounded by the attempt timeout, its failure classified.
    async fn attempt<O, E>(
        &self,
        op: &'static str,
        key: &str,
        request: impl Future<Output = std::result::Result<O, SdkError<E, HttpResponse>>>,
    ) -> std::result::Result<O, Failed>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match tokio::time::timeout(self.timeouts.attempt, request).await {
            Err(_) => Err(Failed::Transient(Fault::NoAnswer(self.timeouts.attempt))),
            Ok(Err(e)) => Err(self.classify(op, key, &e)),
            Ok(Ok(out)) => Ok(out),
        }
    }

    async fn page(
        &self,
        prefix: &str,
        delimiter: bool,
        max: u16,
        token: Option<String>,
    ) -> Result<ListPage> {
        let mut req = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full(prefix))
            .max_keys(i32::from(max.clamp(1, super::MAX_PAGE)));
        if delimiter {
            req = req.delimiter("/");
        }
        let req = req.set_continuation_token(token);
        let page = self
            .call("list", prefix, |_| {
                let send = req.clone().customize().interceptor(OnePassList).send();
                self.attempt("list", prefix, send)
            })
            .await?;
        Ok(to_page(&page, &self.prefix))
    }

    async fn delete_batch(&self, keys: &[String]) -> Result<()> {
        let objects: Vec<ObjectIdentifier> = keys
            .iter()
            .filter_map(|k| ObjectIdentifier::builder().key(self.full(k)).build().ok())
            .collect();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build();
        let delete = delete.map_err(|e| Error::Service {
            op: "delete",
            endpoint: self.endpoint.clone(),
            key: keys.first().cloned().unwrap_or_default(),
            detail: e.to_string(),
            retryable: false,
        })?;
        let req = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete);
        // Deleting again what is gone is no error: DeleteObjects is safe to retry.
        let sent = self
            .call("delete", &keys[0], |_| {
                self.attempt("delete", &keys[0], req.clone().send())
            })
            .await;
        match sent {
            Ok(out) => match out.errors().first() {
                None => Ok(()),
                Some(err) => Err(Error::Service {
                    op: "delete",
                    endpoint: self.endpoint.clone(),
                    key: self.relative(err.key().unwrap_or_default()),
                    detail: format!(
                        "{}: {}",
                        err.code().unwrap_or(""),
                        err.message().unwrap_or("")
                    ),
                    retryable: false,
                }),
            },
            // Some S3-compatible stores refuse DeleteObjects (a missing Content-MD5, or not
            // implemented): fall back to one DeleteObject per key, as Barman does.
            Err(Error::Service { .. }) => self.delete_one_by_one(keys).await,
            Err(other) => Err(other),
        }
    }

    async fn delete_one_by_one(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            let req = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.full(key));
            let sent = self
                .call("delete", key, |_| {
                    self.attempt("delete", key, req.clone().send())
                })
                .await;
            match sent {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl S3Store {
    /// GetObject, whole or a range, collected into memory: retried as a whole when an attempt
    /// fails, the body bounded by the stall timeout instead of a total time.
    async fn fetch(&self, key: &str, range: Option<String>) -> Result<Body> {
        let req = self.get_req(key).set_range(range.clone());
        self.call("get", key, |_| {
            self.fetch_once(key, req.clone(), range.is_none())
        })
        .await
    }

    fn get_req(
        &self,
        key: &str,
    ) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
    }

    async fn fetch_once(
        &self,
        key: &str,
        req: aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder,
        whole: bool,
    ) -> std::result::Result<Body, Failed> {
        let out = match tokio::time::timeout(self.timeouts.attempt, req.send()).await {
            Err(_) => return Err(Failed::Transient(Fault::NoAnswer(self.timeouts.attempt))),
            // 416: the range starts at or past the end; the trait promises "fewer bytes at the end".
            Ok(Err(e)) if e.code() == Some("InvalidRange") => return Ok(Body::default()),
            Ok(Err(e)) => return Err(self.classify("get", key, &e)),
            Ok(Ok(out)) => out,
        };
        let of = out.content_length().and_then(|n| u64::try_from(n).ok());
        let md5 = plain_md5(out.e_tag()).filter(|_| whole);
        let mut body = out.body;
        // Copied as they arrive into a buffer of the pool (see `pool`), so that the client's
        // receive buffers are free again at once; other bodies are kept in the pieces they came in.
        let mut pooled = of
            .filter(|n| POOL_SIZES.contains(n))
            .map(|n| super::pool::take(usize::try_from(n).unwrap_or(0)));
        let (mut pieces, mut got) = (Vec::new(), 0u64);
        let (stall, started) = (self.timeouts.stall, tokio::time::Instant::now());
        loop {
            match tokio::time::timeout(stall, body.try_next()).await {
                Err(_) => {
                    return Err(Failed::Transient(Fault::Stalled {
                        got,
                        of,
                        after: stall,
                    }));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    got += chunk.len() as u64;
                    match pooled.as_mut() {
                        Some(buf) => buf.extend_from_slice(&chunk),
                        None => pieces.push(chunk),
                    }
                }
                Ok(Err(e)) => {
                    let why = root_cause(&e).to_ascii_lowercase();
                    return Err(Failed::Transient(Fault::Cut {
                        got,
                        of,
                        reset: why.contains("reset"),
                    }));
                }
            }
            let spent = started.elapsed();
            if spent > stall && (got as f64) < 1024.0 * spent.as_secs_f64() {
                return Err(Failed::Transient(Fault::Crawled {
                    got,
                    rate: (got as f64 / spent.as_secs_f64()) as u64,
                }));
            }
        }
        if of.is_some_and(|of| got < of) {
            return Err(Failed::Transient(Fault::Cut {
                got,
                of,
                reset: false,
            }));
        }
        if let Some(buf) = pooled {
            pieces.push(super::pool::freeze(buf));
        }
        if let Some(expected) = md5 {
            let mut digest = <md5::Md5 as md5::Digest>::new();
            for p in &pieces {
                md5::Digest::update(&mut digest, p);
            }
            let received = hex(&md5::Digest::finalize(digest));
            if received != expected {
                return Err(Failed::Transient(Fault::Corrupt {
                    expected,
                    got: received,
                }));
            }
        }
        Ok(Body::new(pieces))
    }
}

/// Bodies of these lengths (as the response announces) are copied into a pooled buffer: a
/// restore's ranged GETs (8 MiB) and WAL segments (16 MiB), not a large whole object, whose
/// buffer the pool would otherwise keep after it is done with.
const POOL_SIZES: std::ops::RangeInclusive<u64> = (64 << 10)..=(16 << 20);

/// The MD5 in an ETag, when it is one: a single-part upload's ETag is the MD5 of its body; a
/// multipart upload's (`…-N`) is not, and has no checksum openova can check.
fn plain_md5(etag: Option<&str>) -> Option<String> {
    let tag = etag?.trim_matches('"');
    (tag.len() == 32 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| tag.to_ascii_lowercase())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "TooManyRequests"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
    )
}

fn is_auth_code(code: &str) -> bool {
    matches!(
        code,
        "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "InvalidToken"
            | "ExpiredToken"
            | "NotSignedUp"
            // versitygw's answer to an unknown access key, sent with status 404: read as a
            // missing object it would make a wrong key look like an empty archive.
            | "XAdminUserNotFound"
    )
}

/// The innermost cause ("Connection refused (os error 111)"): the outer layers of an SDK
/// dispatch error only repeat that a request failed.
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    if text.is_empty() {
        "timed out".to_string()
    } else {
        short(&text)
    }
}

/// The SDK's error chains repeat themselves; keep the message to one readable line.
fn short(detail: &str) -> String {
    let line = detail.replace('\n', " ");
    if line.len() > 300 {
        format!("{}…", &line[..line.floor_char_boundary(300)])
    } else {
        line
    }
}

/// A key relative to the store's prefix.
fn relative(full: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        return full.to_string();
    }
    full.strip_prefix(prefix)
        .map_or(full, |k| k.trim_start_matches('/'))
        .to_string()
}

/// One ListObjectsV2 answer as a [`ListPage`], keys relative to the store's prefix.
fn to_page(page: &ListObjectsV2Output, prefix: &str) -> ListPage {
    let listing = DirListing {
        objects: page
            .contents()
            .iter()
            .map(|o| ObjectMeta {
                key: relative(o.key().unwrap_or_default(), prefix),
                size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                last_modified: o.last_modified().and_then(to_chrono),
            })
            .collect(),
        dirs: page
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .map(|p| relative(p, prefix))
            .collect(),
    };
    let next = match page.next_continuation_token() {
        Some(t) if page.is_truncated() != Some(false) => Some(t.to_string()),
        _ => None,
    };
    ListPage { listing, next }
}

/// Swaps the SDK's ListObjectsV2 decoder for [`listxml`] (see there for why) on the listing it is
/// attached to. The deserializer is looked up in the config bag after each response arrives (retries
/// included), and the interceptor state is the bag's top layer. Answers that are not a listing (a
/// failure status, an `<Error>` document) go to the SDK's own decoder, so errors, their codes and
/// their retries stay exactly the SDK's.
#[derive(Debug)]
struct OnePassList;

impl Intercept for OnePassList {
    fn name(&self) -> &'static str {
        "openova one-pass ListObjectsV2 decoder"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(SharedResponseDeserializer::new(OnePassList));
        Ok(())
    }
}

/// The SDK's own ListObjectsV2 decoder, from the operation's public runtime plugin.
fn sdk_list_decoder() -> Option<&'static SharedResponseDeserializer> {
    static LAYER: OnceLock<Option<FrozenLayer>> = OnceLock::new();
    LAYER
        .get_or_init(|| RuntimePlugin::config(&ListObjectsV2::new()))
        .as_ref()?
        .load::<SharedResponseDeserializer>()
}

impl DeserializeResponse for OnePassList {
    fn deserialize_nonstreaming_with_config(
        &self,
        response: &HttpResponse,
        cfg: &ConfigBag,
    ) -> OutputOrError {
        let sdk = || match sdk_list_decoder() {
            Some(d) => d.deserialize_nonstreaming_with_config(response, cfg),
            None => Err(OrchestratorError::other(
                "aws-sdk-s3 no longer provides its ListObjectsV2 decoder",
            )),
        };
        if !response.status().is_success() {
            return sdk();
        }
        let unreadable = |why: String| {
            let err =
                ListObjectsV2Error::unhandled(format!("unreadable ListObjectsV2 answer: {why}"));
            OrchestratorError::operation(ErasedError::erase(err))
        };
        match listxml::parse(response.body().bytes().unwrap_or_default()) {
            Ok(listxml::Answer::List(list)) => {
                list_output(list).map(Output::erase).map_err(unreadable)
            }
            // S3 may send an error document with a 200.
            Ok(listxml::Answer::Error) => sdk(),
            Err(why) => Err(unreadable(why)),
        }
    }
}

/// The SDK's output type, which `send()` expects back.
fn list_output(list: listxml::Listing) -> std::result::Result<ListObjectsV2Output, String> {
    let contents = list
        .objects
        .into_iter()
        .map(|e| {
            let size = e
                .size
                .map(|s| {
                    s.trim()
                        .parse::<i64>()
                        .map_err(|_| format!("object '{}' has size '{s}'", e.key))
                })
                .transpose()?;
            let modified = e
                .last_modified
                .map(|t| {
                    aws_sdk_s3::primitives::DateTime::from_str(
                        t.trim(),
                        DateTimeFormat::DateTimeWithOffset,
                    )
                    .map_err(|_| format!("object '{}' has LastModified '{t}'", e.key))
                })
                .transpose()?;
            Ok(Object::builder()
                .key(e.key)
                .set_size(size)
                .set_last_modified(modified)
                .build())
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let prefixes = list
        .prefixes
        .into_iter()
        .map(|p| CommonPrefix::builder().prefix(p).build())
        .collect();
    Ok(ListObjectsV2Output::builder()
        .set_contents(Some(contents))
        .set_common_prefixes(Some(prefixes))
        .set_is_truncated(list.truncated)
        .set_next_continuation_token(list.next_token)
        .build())
}

fn to_chrono(t: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[async_trait]
impl ObjectStore for S3Store {
    fn url(&self) -> &StorageUrl {
        &self.url
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        Ok(super::list_paged(self, prefix, false, super::MAX_PAGE)
            .await?
            .objects)
    }

    async fn list_dir(&self, prefix: &str) -> Result<DirListing> {
        super::list_paged(self, prefix, true, super::MAX_PAGE).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        dirs: bool,
        max: u16,
        token: Option<String>,
    ) -> Result<ListPage> {
        self.page(prefix, dirs, max, token).await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        self.fetch(key, None).await.map(Body::into_bytes)
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Body> {
        if len == 0 {
            return Ok(Body::default());
        }
        self.fetch(key, Some(format!("bytes={offset}-{}", offset + len - 1)))
            .await
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        let req = || {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full(key))
        };
        // Writing the same bytes again is harmless: a plain put is retried as it is.
        self.call("put", key, |_| {
            let send = req().body(ByteStream::from(body.clone())).send();
            self.attempt("put", key, send)
        })
        .await?;
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool> {
        let req = || {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full(key))
                .if_none_match("*")
        };
        // A conditional put is not safe to repeat blindly: when an attempt may have reached the
        // store (no answer, a broken connection, a 5xx), the next one first reads the object,
        // and an object holding exactly these bytes is this writer's own.
        let maybe_written = AtomicBool::new(false);
        self.call("put", key, |_| async {
            if maybe_written.load(Ordering::Acquire) {
                let held = self.fetch_once(key, self.get_req(key), true).await;
                match held {
                    Ok(held) => return Ok(held.into_bytes() == body),
                    Err(Failed::Final(e)) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            let send = req().body(ByteStream::from(body.clone())).send();
            let failed = match tokio::time::timeout(self.timeouts.attempt, send).await {
                Ok(Ok(_)) => return Ok(true),
                // 412: the object exists; 409: a concurrent conditional write won the race.
                Ok(Err(e))
                    if matches!(
                        e.raw_response().map(|r| r.status().as_u16()),
                        Some(412 | 409)
                    ) =>
                {
                    return Ok(false);
                }
                Ok(Err(e)) => self.classify("put", key, &e),
                Err(_) => Failed::Transient(Fault::NoAnswer(self.timeouts.attempt)),
            };
            if let Failed::Transient(f) = &failed
                && !matches!(f, Fault::Throttled { .. } | Fault::Unreachable(_))
            {
                maybe_written.store(true, Ordering::Release);
            }
            Err(failed)
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        for batch in keys.chunks(super::DELETE_BATCH) {
            self.delete_batch(batch).await?;
        }
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let req = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full(key));
        let out = self
            .call("head", key, |_| {
                self.attempt("head", key, req.clone().send())
            })
            .await;
        match out {
            Ok(o) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: o
                    .content_length()
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0),
                last_modified: o.last_modified().and_then(to_chrono),
            })),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn answer(status: u16, body: &str) -> OutputOrError {
        let status = StatusCode::try_from(status).unwrap();
        let response = HttpResponse::new(status, SdkBody::from(body.to_string()));
        OnePassList.deserialize_nonstreaming_with_config(&response, &ConfigBag::base())
    }

    /// What `f` says of the SDK error an answer decodes to.
    fn service_error<R>(result: OutputOrError, f: impl FnOnce(&ListObjectsV2Error) -> R) -> R {
        let err = result.expect_err("an error");
        let err = err.as_operation_error().expect("an operation error");
        f(err
            .downcast_ref::<ListObjectsV2Error>()
            .expect("the SDK's error type"))
    }

    fn code(result: OutputOrError) -> Option<String> {
        service_error(result, |e| e.code().map(str::to_string))
    }

    fn text(result: OutputOrError) -> String {
        service_error(result, |e| DisplayErrorContext(e).to_string())
    }

    #[test]
    fn a_listing_is_decoded_into_the_sdk_output() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>p/a&amp;b</Key>\
            <LastModified>2026-11-24T16:42:21.000Z</LastModified><Size>42</Size></Contents>\
            <CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes>\
            <NextContinuationToken>t</NextContinuationToken></ListBucketResult>";
        let out = answer(200, xml).expect("a listing");
        let out = out
            .downcast::<ListObjectsV2Output>()
            .expect("the SDK's output type");
        let page = to_page(&out, "p");
        assert_eq!(page.listing.objects.len(), 1);
        assert_eq!(page.listing.objects[0].key, "a&b");
        assert_eq!(page.listing.objects[0].size, 42);
        assert_eq!(
            page.listing.objects[0]
                .last_modified
                .map(|t| t.to_rfc3339()),
            Some("2026-11-24T16:42:21+00:00".to_string())
        );
        assert_eq!(page.listing.dirs, ["d/"]);
        assert_eq!(page.next.as_deref(), Some("t"));
        // Times with an offset are accepted, as the SDK accepts them.
        let xml = xml.replace(".000Z", "+01:00");
        assert!(answer(200, &xml).is_ok());
    }

    #[test]
    fn errors_are_the_sdks_own() {
        assert!(
            sdk_list_decoder().is_some(),
            "the SDK's decoder is reachable"
        );
        let missing = "<Error><Code>NoSuchBucket</Code><Message>no</Message></Error>";
        let modeled = service_error(answer(404, missing), |e| {
            matches!(e, ListObjectsV2Error::NoSuchBucket(_))
        });
        assert!(modeled, "a 404 NoSuchBucket is the SDK's modeled error");
        // An error document with a 200, as S3 may send.
        let internal = "<Error><Code>InternalError</Code></Error>";
        assert_eq!(
            code(answer(200, internal)).as_deref(),
            Some("InternalError")
        );
        let denied = "<Error><Code>AccessDenied</Code></Error>";
        assert_eq!(code(answer(403, denied)).as_deref(), Some("AccessDenied"));
    }

    #[test]
    fn an_unreadable_listing_is_an_error_not_a_shorter_listing() {
        let cut = "<ListBucketResult><Contents><Key>a</Key></Contents><Contents><Key>b";
        let t = text(answer(200, cut));
        assert!(t.contains("unreadable ListObjectsV2 answer"), "{t}");
        assert!(t.contains("ends early"), "{t}");
        let bad_size = "<ListBucketResult><Contents><Key>a</Key><Size>x</Size></Contents>\
            </ListBucketResult>";
        let t = text(answer(200, bad_size));
        assert!(t.contains("object 'a' has size 'x'"), "{t}");
    }
}
