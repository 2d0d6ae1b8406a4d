//! Where a terminated container's message comes from.
//!
//! The caller does the reading (the termination message file is a host path mounted at the
//! container's `terminationMessagePath`; the log is the CRI log file); this decides what to read
//! and what to report, as upstream `kuberuntime_container.go` `getTerminationMessage` and
//! `convertToKubeContainerStatus` do. The result goes into
//! [`super::StatusContext::termination_messages`].

/// Upstream's cap on what is read from the termination message file (4 KiB).
pub const MAX_FILE_BYTES: usize = 4096;
/// Upstream's cap on the log tail used as message: 80 lines ...
pub const MAX_LOG_LINES: usize = 80;
/// ... and 2 KiB.
pub const MAX_LOG_BYTES: usize = 2048;

/// What the caller found at the container's termination message path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationMessageFile<'a> {
    /// The container has no `terminationMessagePath`, or no mount for it.
    NotConfigured,
    /// The file does not exist.
    Missing,
    /// Reading it failed (not because it is missing): the path and the error.
    Unreadable {
        /// The host path.
        path: &'a str,
        /// The error, as text.
        error: &'a str,
    },
    /// Its contents (at most [`MAX_FILE_BYTES`]).
    Contents(&'a str),
}

/// What to report as the termination message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminationMessageSource {
    /// This text (possibly empty: no message).
    Message(String),
    /// The last [`MAX_LOG_LINES`] lines, at most [`MAX_LOG_BYTES`], of the container's log.
    LogTail,
}

/// Decides the termination message of an exited container: the file's contents, or, under
/// `terminationMessagePolicy: FallbackToLogsOnError`, the log tail when the container failed
/// (non-zero exit, except `ContainerCannotRun`, which never produced logs) and the file gave
/// nothing.
#[must_use]
pub fn termination_message_source(
    policy: Option<&str>,
    exit_code: i32,
    reason: &str,
    file: TerminationMessageFile<'_>,
) -> TerminationMessageSource {
    let fallback =
        policy == Some("FallbackToLogsOnError") && exit_code != 0 && reason != "ContainerCannotRun";
    let from_logs = |fallback: bool| {
        if fallback {
            TerminationMessageSource::LogTail
        } else {
            TerminationMessageSource::Message(String::new())
        }
    };
    match file {
        TerminationMessageFile::NotConfigured | TerminationMessageFile::Missing => {
            from_logs(fallback)
        }
        TerminationMessageFile::Unreadable { path, error } => TerminationMessageSource::Message(
            format!("Error on reading termination log {path}: {error}"),
        ),
        TerminationMessageFile::Contents("") => from_logs(fallback),
        TerminationMessageFile::Contents(text) => {
            TerminationMessageSource::Message(text.to_owned())
        }
    }
}
