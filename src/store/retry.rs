//! Retries of store calls: which failures are worth another try, how long to wait before it
//! (exponential backoff with jitter, longer when the store says it is overloaded), and when to give
//! up (the call's time bound, a per-attempt cap, the command's retry budget). What the SDK returns
//! is classified by `s3`; this module knows nothing of HTTP libraries, so its rules are tested
//! on their own.

use super::Error;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Why one attempt failed in a way that another attempt may not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// No answer (or no whole answer, for a non-streaming call) within the attempt timeout.
    NoAnswer(Duration),
    /// A download received nothing for the stall bound, after `got` of `of` bytes.
    Stalled {
        got: u64,
        of: Option<u64>,
        after: Duration,
    },
    /// A download crawled below the minimum throughput.
    Crawled { got: u64, rate: u64 },
    /// The connection was reset or closed before the whole body arrived.
    Cut {
        got: u64,
        of: Option<u64>,
        reset: bool,
    },
    /// The store answered 503 SlowDown, 429 or another throttling code.
    Throttled { status: u16, code: String },
    /// A 5xx that is not throttling.
    Server { status: u16, code: String },
    /// The connection could not be made (refused, no route, DNS); retried only briefly, since
    /// it usually means a wrong endpoint.
    Unreachable(String),
    /// The connection failed around a request (reset before any answer, a broken answer).
    Connection(String),
    /// The body does not match the checksum the store gave for it.
    Corrupt { expected: String, got: String },
}

impl Fault {
    /// What happened, for a message.
    #[must_use]
    pub fn describe(&self) -> String {
        let bytes = |got: u64, of: Option<u64>| match of {
            Some(of) => format!("{got} of {of} bytes"),
            None => format!("{got} bytes"),
        };
        match self {
            Self::NoAnswer(d) => format!("no answer within {} (the attempt timeout)", secs(*d)),
            Self::Stalled { got, of, after } => format!(
                "the download stalled after {}: nothing arrived for {}",
                bytes(*got, *of),
                secs(*after)
            ),
            Self::Crawled { got, rate } => {
                format!("the download crawled at {rate} bytes/s after {got} bytes (under 1 KiB/s)")
            }
            Self::Cut {
                got,
                of,
                reset: true,
            } => format!("the connection was reset after {}", bytes(*got, *of)),
            Self::Cut { got, of, .. } => {
                format!("the connection closed early, after {}", bytes(*got, *of))
            }
            Self::Throttled { status, code } => format!("throttled ({status} {code})"),
            Self::Server { status, code } => format!("the store failed ({status} {code})"),
            Self::Unreachable(why) => format!("cannot connect: {why}"),
            Self::Connection(why) => format!("the connection failed: {why}"),
            Self::Corrupt { expected, got } => format!(
                "the body does not match its checksum (ETag MD5 {expected}, received {got})"
            ),
        }
    }

    /// What to check, for a message.
    #[must_use]
    pub fn hint(&self) -> &'static str {
        match self {
            Self::NoAnswer(_) | Self::Stalled { .. } | Self::Crawled { .. } => {
                "check the endpoint and the network; storage.timeouts in the policy, or \
                 OPENOVA_S3_ATTEMPT_TIMEOUT, OPENOVA_S3_OPERATION_TIMEOUT and \
                 OPENOVA_S3_STALL_TIMEOUT, set the bounds"
            }
            Self::Throttled { .. } => {
                "the store asks for fewer requests: run again later; storage.timeouts.retries \
                 (OPENOVA_S3_RETRY_BUDGET) and .operation (OPENOVA_S3_OPERATION_TIMEOUT) allow \
                 longer backing off"
            }
            Self::Server { .. } => {
                "the store failed on its side: check its status page and run again later"
            }
            Self::Unreachable(_) => {
                "check the endpoint URL (storage.endpoint, --endpoint or OPENOVA_S3_ENDPOINT) \
                 and the network"
            }
            Self::Cut { .. } | Self::Connection(_) => {
                "check the network and any proxy between openova and the store, then run again"
            }
            Self::Corrupt { .. } => {
                "the bytes changed on the way: check proxies and the network and run again; if \
                 it persists, the object itself is damaged"
            }
        }
    }

    /// Attempts allowed for this kind of failure within one call.
    fn max_attempts(&self) -> u32 {
        match self {
            Self::Unreachable(_) => 3,
            _ => 8,
        }
    }

    /// The first backoff: the store asked to slow down, so wait longer there.
    fn base(&self) -> Duration {
        match self {
            Self::Throttled { .. } => Duration::from_secs(1),
            _ => Duration::from_millis(200),
        }
    }

    /// Bytes an attempt received before it failed (a download's progress).
    fn progress(&self) -> u64 {
        match self {
            Self::Stalled { got, .. } | Self::Crawled { got, .. } | Self::Cut { got, .. } => *got,
            _ => 0,
        }
    }
}

/// An attempt's failure: worth another try, or final.
#[derive(Debug)]
pub enum Failed {
    Transient(Fault),
    Final(Error),
}

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        Self::Final(e)
    }
}

/// The retries one command may still spend, shared by all its calls.
#[derive(Debug)]
pub struct Budget {
    total: u32,
    left: AtomicU32,
}

impl Budget {
    #[must_use]
    pub fn new(total: u32) -> Self {
        Self {
            total,
            left: AtomicU32::new(total),
        }
    }

    /// Takes one retry; `false` when none is left.
    fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// What a call is, for messages: the operation, the endpoint and the full key or prefix.
pub struct Call<'a> {
    pub op: &'static str,
    pub endpoint: &'a str,
    pub key: &'a str,
    /// The call's time bound with its retries (the clock restarts when a download progresses).
    pub operation: Duration,
    pub budget: &'a Budget,
}

/// Runs `attempt` until it succeeds, fails finally, or the call runs out of time, attempts or
/// budget; the error then says what happened on the last attempt, how often, and what to check.
pub async fn run<T, F, Fut>(call: &Call<'_>, mut attempt: F) -> Result<T, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failed>>,
{
    let first = Instant::now();
    let mut clock = first;
    let (mut n, mut throttled, mut backoffs) = (0u32, 0u32, 0u32);
    loop {
        n += 1;
        let fault = match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(Failed::Final(e)) => return Err(e),
            Err(Failed::Transient(f)) => f,
        };
        if matches!(fault, Fault::Throttled { .. }) {
            throttled += 1;
        }
        if fault.progress() > 0 {
            clock = Instant::now();
            backoffs = 0;
        }
        let wait = backoff(fault.base(), backoffs);
        backoffs += 1;
        let out_of_time = clock.elapsed() + wait >= call.operation;
        let stop = if n >= fault.max_attempts() {
            Some(String::new())
        } else if out_of_time {
            Some(format!(
                "; the call's bound of {} would pass before the next attempt",
                secs(call.operation)
            ))
        } else if !call.budget.take() {
            Some(format!(
                "; the command's retry budget of {} is spent",
                call.budget.total
            ))
        } else {
            None
        };
        if let Some(why) = stop {
            return Err(give_up(call, &fault, n, throttled, first.elapsed(), &why));
        }
        tracing::debug!(
            op = call.op,
            key = call.key,
            attempt = n,
            wait_ms = wait.as_millis(),
            fault = %fault.describe(),
            "store call failed; retrying"
        );
        tokio::time::sleep(wait).await;
    }
}

fn give_up(
    call: &Call<'_>,
    fault: &Fault,
    attempts: u32,
    throttled: u32,
    took: Duration,
    why: &str,
) -> Error {
    let tries = if attempts == 1 {
        "1 attempt".to_string()
    } else {
        format!("{attempts} attempts")
    };
    let took = format!("{:.1} s", took.as_secs_f64());
    if let Fault::Unreachable(detail) = fault {
        return Error::Unreachable {
            endpoint: call.endpoint.to_string(),
            detail: format!("{detail} ({tries} in {took})"),
        };
    }
    let mut what = fault.describe();
    match (fault, throttled) {
        (Fault::Throttled { .. }, n) if n > 1 => what = format!("{what}, {n} times"),
        (Fault::Throttled { .. }, _) | (_, 0) => {}
        (_, n) => what = format!("{what} (throttled {n} times before)"),
    }
    Error::GaveUp(Box::new(super::error::GaveUp {
        op: call.op,
        endpoint: call.endpoint.to_string(),
        key: call.key.to_string(),
        attempts: tries,
        took,
        what: format!("{what}{why}"),
        hint: fault.hint(),
        throttled: matches!(fault, Fault::Throttled { .. }),
    }))
}

/// The wait before retry `n` (0 first): `base · 2ⁿ`, capped at 20 s, of which a random half
/// ("equal jitter"): never all callers at once, never no wait at all.
#[must_use]
pub fn backoff(base: Duration, n: u32) -> Duration {
    let full = base
        .saturating_mul(1u32 << n.min(16))
        .min(Duration::from_secs(20));
    let half = full / 2;
    let jitter = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random() % jitter.max(1))
}

/// A random number from the standard library's per-process hash keys (no extra dependency):
/// good enough to spread retries apart.
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// `2 s`, `500 ms`.
#[must_use]
pub fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn call(budget: &Budget, operation: u64) -> Call<'_> {
        Call {
            op: "get",
            endpoint: "http://store",
            key: "p/k",
            operation: Duration::from_secs(operation),
            budget,
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let base = Duration::from_millis(200);
        for n in 0..20 {
            let full = (base * (1 << n.min(16))).min(Duration::from_secs(20));
            let w = backoff(base, n);
            assert!(w >= full / 2 && w <= full, "retry {n}: {w:?} of {full:?}");
        }
        let waits: std::collections::HashSet<_> = (0..20).map(|_| backoff(base, 5)).collect();
        assert!(waits.len() > 1, "jitter spreads the waits: {waits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_fault_is_retried_until_it_passes() {
        let budget = Budget::new(10);
        let seen = Mutex::new(0);
        let out = run(&call(&budget, 120), |n| {
            *seen.lock().unwrap() = n;
            async move {
                if n < 3 {
                    Err(Failed::Transient(Fault::Throttled {
                        status: 503,
                        code: "SlowDown".into(),
                    }))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(out.unwrap(), 3);
        assert_eq!(budget.left.load(Ordering::Relaxed), 8, "two retries spent");
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_backs_off_and_the_message_counts_it() {
        let budget = Budget::new(50);
        let start = Instant::now();
        let e = run(&call(&budget, 30), |_| async {
            Err::<(), _>(Failed::Transient(Fault::Throttled {
                status: 503,
                code: "SlowDown".into(),
            }))
        })
        .await
        .unwrap_err();
        let took = start.elapsed();
        // 1 s, 2 s, 4 s, 8 s (halves at least) before the bound of 30 s stops it.
        assert!(took >= Duration::from_secs(7), "backed off: {took:?}");
        assert!(took < Duration::from_secs(30), "within the bound: {took:?}");
        let text = e.to_string();
        assert!(
            text.starts_with("S3 get of 'p/k' on http://store failed after ")
                && text.contains("throttled (503 SlowDown), ")
                && text.contains(" times; the call's bound of 30 s would pass")
                && text.contains("run again later"),
            "{text}"
        );
        assert!(e.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_is_shared_and_ends_retries() {
        let budget = Budget::new(2);
        let fault = || async {
            Err::<(), _>(Failed::Transient(Fault::Server {
                status: 500,
                code: "InternalError".into(),
            }))
        };
        let e = run(&call(&budget, 600), |_| fault()).await.unwrap_err();
        assert!(e.to_string().contains("after 3 attempts"), "{e}");
        assert!(e.to_string().contains("retry budget of 2 is spent"), "{e}");
        // The next call of the same command gets no retry at all.
        let e = run(&call(&budget, 600), |_| fault()).await.unwrap_err();
        assert!(e.to_string().contains("after 1 attempt"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn final_errors_are_not_retried_and_a_dead_endpoint_is_retried_briefly() {
        let budget = Budget::new(50);
        let tries = Mutex::new(0);
        let e = run(&call(&budget, 120), |_| {
            *tries.lock().unwrap() += 1;
            async {
                Err::<(), _>(Failed::Final(Error::NotFound {
                    url: "s3://b".into(),
                    key: "k".into(),
                }))
            }
        })
        .await
        .unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(*tries.lock().unwrap(), 1);
        let e = run(&call(&budget, 120), |_| async {
            Err::<(), _>(Failed::Transient(Fault::Unreachable(
                "Connection refused".into(),
            )))
        })
        .await
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(
                "cannot reach the S3 endpoint http://store: Connection refused (3 attempts in "
            ),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_download_that_progresses_is_not_cut_by_the_call_bound() {
        let budget = Budget::new(50);
        // Each attempt streams for 50 s and breaks off after some bytes: the 60 s bound counts
        // from the last progress, so the fourth attempt gets to finish.
        let out = run(&call(&budget, 60), |n| async move {
            tokio::time::sleep(Duration::from_secs(50)).await;
            if n < 4 {
                Err(Failed::Transient(Fault::Cut {
                    got: 1024,
                    of: Some(4096),
                    reset: true,
                }))
            } else {
                Ok(())
            }
        })
        .await;
        assert!(out.is_ok(), "{out:?}");
    }
}
