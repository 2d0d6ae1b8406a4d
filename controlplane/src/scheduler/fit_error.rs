//! The unschedulable message, formatted as kube-scheduler's `FitError.Error()`
//! (`pkg/scheduler/framework/types.go`):
//!
//! `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.`
//!
//! Each reason of each rejected node is counted; the entries are `"<count> <reason>"`, sorted
//! as strings (so `"10 ..."` sorts before `"2 ..."`, as upstream's `sort.Strings` does) and
//! joined with `", "`. A `PreFilter` rejection replaces the per-node reasons.

use std::collections::BTreeMap;
use std::fmt;

/// The longest event message the API server accepts (`validation.NoteLengthLimit`).
pub const NOTE_LENGTH_LIMIT: usize = 1024;

/// Why no node fits a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FitError {
    /// How many nodes the scheduler knew.
    pub num_all_nodes: usize,
    /// A `PreFilter` plugin's rejection that applies to every node.
    pub pre_filter_msg: Option<String>,
    /// The reasons of each node that the filters rejected, by node name.
    pub node_reasons: BTreeMap<String, Vec<String>>,
    /// The reason given for nodes that a `PreFilter` result left out (they have no entry in
    /// `node_reasons`).
    pub absent_nodes_reason: Option<String>,
}

impl FitError {
    /// The `"<count> <reason>"` entries, sorted.
    #[must_use]
    pub fn reason_histogram(&self) -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for reasons in self.node_reasons.values() {
            for reason in reasons {
                *counts.entry(reason.as_str()).or_default() += 1;
            }
        }
        let absent = self.num_all_nodes.saturating_sub(self.node_reasons.len());
        if let Some(reason) = &self.absent_nodes_reason
            && absent > 0
        {
            *counts.entry(reason.as_str()).or_default() += absent;
        }
        let mut entries: Vec<String> = counts
            .into_iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        entries.sort();
        entries
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        if let Some(msg) = &self.pre_filter_msg {
            return write!(f, " {msg}.");
        }
        let entries = self.reason_histogram();
        if !entries.is_empty() {
            write!(f, " {}.", entries.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

/// Cuts a message to the event note limit the way kube-scheduler does (`truncateMessage`),
/// ending it with `" ..."`, and never inside a UTF-8 character.
#[must_use]
pub fn truncate_message(message: &str, limit: usize) -> String {
    const SUFFIX: &str = " ...";
    if message.len() <= limit {
        return message.to_string();
    }
    let mut end = limit.saturating_sub(SUFFIX.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{SUFFIX}", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_to_the_limit_with_an_ellipsis() {
        assert_eq!(truncate_message("short", 10), "short");
        let cut = truncate_message(&"x".repeat(2000), NOTE_LENGTH_LIMIT);
        assert_eq!(cut.len(), NOTE_LENGTH_LIMIT);
        assert!(cut.ends_with("x ..."));
        // Never splits a multi-byte character.
        let cut = truncate_message(&"é".repeat(10), 9);
        assert_eq!(cut, "éé ...");
    }
}
