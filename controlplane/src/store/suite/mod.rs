//! The behavioural contract of a [`Store`]: one suite that every backend must pass, run by
//! the integration tests against the embedded store and against a real etcd.
//!
//! It is an ordinary public module, not `cfg(test)`, because integration tests (and future
//! backends' tests, and the API server's) link the library as a normal dependency and cannot
//! see `cfg(test)` items; it costs a few kilobytes of code and no dependency. Cases report a
//! failure as an error rather than panicking, as library code should.
//!
//! Every case works under its own key prefix below a root the caller chooses, so that one
//! store (one etcd) serves the whole suite and may hold other data. Cases run one after the
//! other; `compaction` runs last because compaction is global to the store.

mod basic;
mod watches;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;

use super::{Error, Event, EventStream, Revision, Store};

/// How long a case waits for one expected event or answer before it fails.
const WAIT: Duration = Duration::from_secs(20);

/// What a case returns: `Err` says what went wrong.
pub type CaseResult = Result<(), String>;

/// One case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// A name that says what is checked.
    pub name: &'static str,
    run: fn(Arc<dyn Store>, String) -> BoxFuture<'static, CaseResult>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Case {
    /// Runs the case on `store` with keys under `root`.
    pub async fn run(&self, store: Arc<dyn Store>, root: &str) -> CaseResult {
        (self.run)(store, format!("{root}/{}", self.name)).await
    }
}

/// Every case, in the order they must run.
#[must_use]
pub fn cases() -> Vec<Case> {
    ALL.to_vec()
}

const ALL: &[Case] = &[
    Case {
        name: "crud",
        run: |s, r| Box::pin(basic::crud(s, r)),
    },
    Case {
        name: "refusals",
        run: |s, r| Box::pin(basic::refusals(s, r)),
    },
    Case {
        name: "revisions_increase_across_keys",
        run: |s, r| Box::pin(basic::revisions_increase_across_keys(s, r)),
    },
    Case {
        name: "list_is_a_snapshot_at_its_revision",
        run: |s, r| Box::pin(watches::list_is_a_snapshot_at_its_revision(s, r)),
    },
    Case {
        name: "watch_replays_history_with_prev",
        run: |s, r| Box::pin(watches::watch_replays_history_with_prev(s, r)),
    },
    Case {
        name: "watch_resumes_from_the_middle",
        run: |s, r| Box::pin(watches::watch_resumes_from_the_middle(s, r)),
    },
    Case {
        name: "watch_sees_concurrent_writers_exactly_once",
        run: |s, r| Box::pin(watches::watch_sees_concurrent_writers_exactly_once(s, r)),
    },
    Case {
        name: "prefixes_are_isolated",
        run: |s, r| Box::pin(watches::prefixes_are_isolated(s, r)),
    },
    Case {
        name: "concurrent_conditional_updates_conflict",
        run: |s, r| Box::pin(basic::concurrent_conditional_updates_conflict(s, r)),
    },
    Case {
        name: "compaction",
        run: |s, r| Box::pin(basic::compaction(s, r)),
    },
];

/// The cases that failed.
#[derive(Debug, thiserror::Error)]
#[error("{} of {total} store suite cases failed:{}", failures.len(), Listing(failures))]
pub struct SuiteFailed {
    pub total: usize,
    /// Case name and what went wrong.
    pub failures: Vec<(&'static str, String)>,
}

struct Listing<'a>(&'a [(&'static str, String)]);

impl fmt::Display for Listing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, message) in self.0 {
            write!(f, "\n  {name}: {message}")?;
        }
        Ok(())
    }
}

/// Runs every case on `store` with keys under `root` (say `/suite-<unique>`), reporting
/// each on stderr, and fails with the list of failed cases.
pub async fn run(store: Arc<dyn Store>, root: &str) -> Result<(), SuiteFailed> {
    let all = cases();
    let mut failures = Vec::new();
    for case in &all {
        let outcome = case.run(Arc::clone(&store), root).await;
        match &outcome {
            Ok(()) => eprintln!("store suite: {} ... ok", case.name),
            Err(message) => eprintln!("store suite: {} ... FAILED: {message}", case.name),
        }
        if let Err(message) = outcome {
            failures.push((case.name, message));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(SuiteFailed {
            total: all.len(),
            failures,
        })
    }
}

/// Fails the case with a message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}
pub(crate) use ensure;

/// Fails the case unless both sides are equal.
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($what:tt)+) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual != expected {
            return Err(format!(
                "{}: expected {:?}, got {:?}",
                format_args!($($what)+),
                expected,
                actual
            ));
        }
    }};
}
pub(crate) use ensure_eq;

/// Turns a store error into a case failure that says what was being done.
trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T, String>;
}

impl<T> Context<T> for Result<T, Error> {
    fn context(self, what: impl fmt::Display) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// The next `n` events of a stream, each within [`WAIT`].
async fn next_events(stream: &mut EventStream, n: usize, what: &str) -> Result<Vec<Event>, String> {
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(Ok(event))) => events.push(event),
            Ok(Some(Err(e))) => return Err(format!("{what}: event {i} of {n}: {e}")),
            Ok(None) => return Err(format!("{what}: stream ended after {i} of {n} events")),
            Err(_) => {
                return Err(format!(
                    "{what}: no event {i} of {n} within {WAIT:?} (got {:?})",
                    events.iter().map(Event::revision).collect::<Vec<_>>()
                ));
            }
        }
    }
    Ok(events)
}

/// Checks that watching from `after` is refused as compacted — by `watch` itself or as the
/// stream's first item — and returns the compacted revision reported.
async fn expect_compacted(
    store: &dyn Store,
    prefix: &str,
    after: Revision,
) -> Result<Revision, String> {
    let what = format!("watch {prefix:?} after {after}");
    let first = match store.watch(prefix, after).await {
        Err(e) => Err(e),
        Ok(mut stream) => match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(item)) => item.map(|event| Some(event.revision())),
            Ok(None) => Ok(None),
            Err(_) => {
                return Err(format!(
                    "{what}: neither Compacted nor an event within {WAIT:?}"
                ));
            }
        },
    };
    match first {
        Err(Error::Compacted {
            requested,
            compacted,
        }) => {
            ensure_eq!(requested, after, "{what}: requested revision in Compacted");
            ensure!(
                compacted > after,
                "{what}: Compacted reports compacted revision {compacted}, not past {after}"
            );
            Ok(compacted)
        }
        Err(e) => Err(format!("{what}: expected Compacted, got error {e}")),
        Ok(first) => Err(format!(
            "{what}: expected Compacted, got the stream item at revision {first:?}"
        )),
    }
}
