//! How the Qdrant backend survives a cluster that misbehaves: a deadline on every call,
//! retries with exponential backoff and full jitter for the failures that a retry can cure
//! (and only those), and one circuit breaker per node, so that a node that is down is skipped
//! at once instead of costing every caller its timeout.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Timeouts, retries and the breaker's thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct ResiliencePolicy {
    /// Deadline of one attempt (request and answer).
    pub timeout: Duration,
    /// Deadline of opening a connection to a node.
    pub connect_timeout: Duration,
    /// Attempts of one operation, the first included.
    pub max_attempts: u32,
    /// The backoff before retry n is drawn uniformly from 0 to min(max, base × 2^n).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Consecutive failures of a node that open its breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker refuses calls before letting one probe through.
    pub breaker_cooldown: Duration,
}

impl Default for ResiliencePolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_attempts: 4,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
        }
    }
}

impl ResiliencePolicy {
    /// The pause before attempt `attempt + 1` (`attempt` counts from 1): "full jitter", so
    /// that clients failing together do not retry together.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.backoff_max);
        let fraction = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }
}

fn random_u64() -> u64 {
    // The OS generator is never expected to fail; if it does, jitter from the clock is enough.
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64 * 0x9E37_79B9_7F4A_7C15)
            .unwrap_or(0)
    })
}

/// The state of a node's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused without being tried until the cooldown ends.
    Open,
    /// One probe is in flight: its outcome closes or reopens the breaker.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// One node's circuit breaker and its counters.
#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
    opened: AtomicU64,
    closed: AtomicU64,
    rejected: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    calls: AtomicU64,
}

/// Whether a call may go to the node now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Go,
    /// Refused: the breaker is open for this much longer (zero while a probe is in flight).
    Refused(Duration),
}

impl Breaker {
    pub(crate) fn new(policy: &ResiliencePolicy) -> Self {
        Self {
            state: Mutex::new(State::Closed {
                consecutive_failures: 0,
            }),
            threshold: policy.breaker_threshold.max(1),
            cooldown: policy.breaker_cooldown,
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value: one left by a panicking thread is still valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn admit(&self) -> Admission {
        let mut state = self.lock();
        let admission = match *state {
            State::Closed { .. } => Admission::Go,
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::HalfOpen;
                    Admission::Go
                } else {
                    Admission::Refused(until - now)
                }
            }
            State::HalfOpen => Admission::Refused(Duration::ZERO),
        };
        match admission {
            Admission::Go => self.calls.fetch_add(1, Ordering::Relaxed),
            Admission::Refused(_) => self.rejected.fetch_add(1, Ordering::Relaxed),
        };
        admission
    }

    pub(crate) fn succeeded(&self) {
        let mut state = self.lock();
        if !matches!(
            *state,
            State::Closed {
                consecutive_failures: 0
            }
        ) {
            if !matches!(*state, State::Closed { .. }) {
                self.closed.fetch_add(1, Ordering::Relaxed);
            }
            *state = State::Closed {
                consecutive_failures: 0,
            };
        }
    }

    /// A failure that says the node is unwell (unreachable, too slow, overloaded).
    pub(crate) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        let open = match *state {
            State::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures + 1;
                *state = State::Closed {
                    consecutive_failures: failures,
                };
                failures >= self.threshold
            }
            State::HalfOpen => true,
            State::Open { .. } => false,
        };
        if open {
            *state = State::Open {
                until: Instant::now() + self.cooldown,
            };
            self.opened.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An answer that says nothing about the node's health (the request was wrong): it ends a
    /// probe as a success would, since the node did answer.
    pub(crate) fn answered(&self) {
        self.succeeded();
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }

    pub(crate) fn metrics(&self, node: &str) -> NodeMetrics {
        NodeMetrics {
            node: node.to_owned(),
            breaker: self.state(),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            breaker_opened: self.opened.load(Ordering::Relaxed),
            breaker_closed: self.closed.load(Ordering::Relaxed),
        }
    }
}

/// What one node of a remote store has been through, since the process started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeMetrics {
    pub node: String,
    pub breaker: BreakerState,
    /// Attempts sent to the node.
    pub calls: u64,
    /// Attempts that failed in a way that counts against the node (unreachable, timeout,
    /// overloaded).
    pub failures: u64,
    /// Attempts that were retries of a failed one.
    pub retries: u64,
    /// Calls refused without being sent because the breaker was open.
    pub rejected: u64,
    pub breaker_opened: u64,
    pub breaker_closed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(threshold: u32, cooldown_ms: u64) -> ResiliencePolicy {
        ResiliencePolicy {
            breaker_threshold: threshold,
            breaker_cooldown: Duration::from_millis(cooldown_ms),
            ..ResiliencePolicy::default()
        }
    }

    #[test]
    fn breaker_opens_after_threshold_and_closes_after_a_good_probe() {
        let breaker = Breaker::new(&policy(3, 50));
        for _ in 0..2 {
            assert_eq!(breaker.admit(), Admission::Go);
            breaker.failed();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.admit(), Admission::Go);
        breaker.failed();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(matches!(breaker.admit(), Admission::Refused(d) if d > Duration::ZERO));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(breaker.admit(), Admission::Go, "the probe goes through");
        assert!(
            matches!(breaker.admit(), Admission::Refused(_)),
            "only one probe at a time"
        );
        breaker.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
        let metrics = breaker.metrics("n");
        assert_eq!((metrics.breaker_opened, metrics.breaker_closed), (1, 1));
        assert_eq!(metrics.rejected, 2);
        assert_eq!(metrics.failures, 3);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let breaker = Breaker::new(&policy(1, 20));
        breaker.failed();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(breaker.admit(), Admission::Go);
        breaker.failed();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.metrics("n").breaker_opened, 2);
    }

    #[test]
    fn a_success_resets_the_count_of_failures() {
        let breaker = Breaker::new(&policy(2, 1000));
        breaker.failed();
        breaker.succeeded();
        breaker.failed();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let policy = ResiliencePolicy::default();
        for attempt in 1..20 {
            let pause = policy.backoff(attempt);
            assert!(pause <= policy.backoff_max);
            assert!(pause <= policy.backoff_base * (1 << attempt.min(16)));
        }
    }
}
