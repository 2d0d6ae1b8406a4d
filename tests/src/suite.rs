//! A small runner for end-to-end suites that share one cluster (`harness = false` test
//! targets): the cluster is set up once, the cases run against it (concurrently or one by
//! one) each with a time limit, the cluster is torn down whatever happened, and the output
//! and exit status are those of `cargo test`. Arguments that are not flags filter the cases
//! by substring, as libtest's do; `--list` lists them.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// One case's future.
pub type CaseFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A named case, made from the shared context.
pub struct Case<C> {
    pub name: &'static str,
    pub run: fn(C) -> CaseFuture,
}

/// `case!(an_async_fn)`: the [`Case`] named after an `async fn(C) -> anyhow::Result<()>`.
#[macro_export]
macro_rules! case {
    ($name:ident) => {
        $crate::suite::Case {
            name: stringify!($name),
            run: |ctx| Box::pin($name(ctx)) as $crate::suite::CaseFuture,
        }
    };
}

impl<C> std::fmt::Debug for Case<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How the cases run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// All at once (they must not disturb each other).
    Concurrent,
    /// One after the other (each may disturb the cluster).
    Sequential,
}

/// The cases selected by the command line, or `None` when only listing.
#[must_use]
pub fn select<C>(cases: Vec<Case<C>>) -> Option<Vec<Case<C>>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for case in &cases {
            println!("{}: test", case.name);
        }
        return None;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let exact = args.iter().any(|a| a == "--exact");
    Some(
        cases
            .into_iter()
            .filter(|c| {
                filters.is_empty()
                    || filters.iter().any(|f| {
                        if exact {
                            c.name == f.as_str()
                        } else {
                            c.name.contains(f.as_str())
                        }
                    })
            })
            .collect(),
    )
}

/// Runs `cases` with `context` (cloned for each), each within `limit`, and prints libtest's
/// lines. Returns the failures' names and messages.
pub async fn run<C: Clone + Send + 'static>(
    cases: &[Case<C>],
    context: &C,
    mode: Mode,
    limit: Duration,
) -> Vec<(&'static str, String)> {
    println!("\nrunning {} tests", cases.len());
    let mut failures = Vec::new();
    let mut running = Vec::new();
    for case in cases {
        let future = (case.run)(context.clone());
        let handle = tokio::spawn(async move {
            let began = Instant::now();
            let outcome = match tokio::time::timeout(limit, future).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(format!("{err:#}")),
                Err(_) => Err(format!("timed out after {limit:?}")),
            };
            (outcome, began.elapsed())
        });
        if mode == Mode::Sequential {
            report(case.name, handle.await, &mut failures);
        } else {
            running.push((case.name, handle));
        }
    }
    for (name, handle) in running {
        report(name, handle.await, &mut failures);
    }
    failures
}

type Joined = Result<(Result<(), String>, Duration), tokio::task::JoinError>;

fn report(name: &'static str, joined: Joined, failures: &mut Vec<(&'static str, String)>) {
    match joined {
        Ok((Ok(()), elapsed)) => println!("test {name} ... ok ({:.1}s)", elapsed.as_secs_f64()),
        Ok((Err(message), elapsed)) => {
            println!("test {name} ... FAILED ({:.1}s)", elapsed.as_secs_f64());
            failures.push((name, message));
        }
        Err(err) => {
            println!("test {name} ... FAILED (panicked)");
            failures.push((name, format!("panicked: {err}")));
        }
    }
}

/// Prints the failures and the summary line; the exit status for `main`.
#[must_use]
pub fn summary(
    total: usize,
    failures: &[(&'static str, String)],
    teardown: &Result<(), String>,
) -> ExitCode {
    for (name, message) in failures {
        println!("\n---- {name} ----\n{message}");
    }
    if let Err(err) = teardown {
        println!("\n---- teardown ----\n{err}");
    }
    let ok = failures.is_empty() && teardown.is_ok();
    println!(
        "\ntest result: {}. {} passed; {} failed\n",
        if ok { "ok" } else { "FAILED" },
        total - failures.len(),
        failures.len()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
