//! Taints and tolerations: the matching rules of `k8s.io/api/core/v1` `Toleration.ToleratesTaint`,
//! shared by the scheduler's `TaintToleration` filter and the node lifecycle controller's
//! `NoExecute` evictions.

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};

/// Taint effect: new pods are not scheduled unless they tolerate it.
pub const NO_SCHEDULE: &str = "NoSchedule";
/// Taint effect: the scheduler avoids the node when it can (scoring only).
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
/// Taint effect: like `NoSchedule`, and running pods that do not tolerate it are evicted.
pub const NO_EXECUTE: &str = "NoExecute";

/// The node's Ready condition is `False`.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The node's Ready condition is `Unknown`: the node stopped reporting.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The node is cordoned (`spec.unschedulable`).
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The node reports `MemoryPressure`.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// The node reports `DiskPressure`.
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// The node reports `PIDPressure`.
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// The node reports `NetworkUnavailable`.
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Whether one toleration tolerates a taint: an empty effect matches every effect, an empty
/// key (with `Exists`) matches every key, `Exists` ignores the value, `Equal` (or no
/// operator) compares it.
#[must_use]
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of the tolerations tolerates the taint.
#[must_use]
pub fn tolerated_by(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first taint, among those `relevant` selects, that no toleration tolerates.
pub fn first_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    relevant: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .find(|taint| relevant(taint) && !tolerated_by(tolerations, taint))
}

/// A taint with a key and an effect and no value.
#[must_use]
pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: effect.to_string(),
        time_added: None,
        value: None,
    }
}

/// The status of a node condition, if the node reports it.
#[must_use]
pub fn condition_status<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The taints the scheduler sees on a node: `spec.taints`, plus the `NoSchedule` taint the node
/// lifecycle controller puts on a node that is not Ready (`not-ready` for a `False` or missing
/// Ready condition, `unreachable` for `Unknown`) when it is not there yet — even if the
/// `NoExecute` one is, which most pods tolerate for a while. This is how
/// kube-scheduler keeps pods off unready nodes — through the taint, which pods such as
/// `DaemonSet` pods can tolerate — without waiting for the controller to write it.
#[must_use]
pub fn scheduling_taints(node: &Node) -> Vec<Taint> {
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let implicit = match condition_status(node, "Ready") {
        Some("True") => None,
        Some("Unknown") => Some(TAINT_UNREACHABLE),
        _ => Some(TAINT_NOT_READY),
    };
    if let Some(key) = implicit
        && !taints
            .iter()
            .any(|t| t.key == key && t.effect == NO_SCHEDULE)
    {
        taints.push(taint(key, NO_SCHEDULE));
    }
    taints
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: opt(key),
            operator: opt(operator),
            value: opt(value),
            effect: opt(effect),
            toleration_seconds: None,
        }
    }

    fn valued(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            value: Some(value.to_string()),
            ..taint(key, effect)
        }
    }

    #[test]
    fn equal_needs_key_value_and_effect() {
        let t = valued("dedicated", "gpu", NO_SCHEDULE);
        assert!(tolerates(
            &toleration("dedicated", "Equal", "gpu", "NoSchedule"),
            &t
        ));
        assert!(tolerates(
            &toleration("dedicated", "", "gpu", "NoSchedule"),
            &t
        ));
        assert!(!tolerates(
            &toleration("dedicated", "Equal", "cpu", "NoSchedule"),
            &t
        ));
        assert!(!tolerates(
            &toleration("other", "Equal", "gpu", "NoSchedule"),
            &t
        ));
        assert!(!tolerates(
            &toleration("dedicated", "Equal", "gpu", "NoExecute"),
            &t
        ));
    }

    #[test]
    fn exists_ignores_the_value() {
        let t = valued("dedicated", "gpu", NO_EXECUTE);
        assert!(tolerates(
            &toleration("dedicated", "Exists", "", "NoExecute"),
            &t
        ));
        assert!(!tolerates(&toleration("other", "Exists", "", ""), &t));
    }

    #[test]
    fn an_empty_effect_matches_all_effects() {
        for effect in [NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE] {
            assert!(tolerates(
                &toleration("k", "Exists", "", ""),
                &taint("k", effect)
            ));
        }
    }

    #[test]
    fn an_empty_key_with_exists_tolerates_everything() {
        let everything = toleration("", "Exists", "", "");
        assert!(tolerates(&everything, &valued("a", "b", NO_EXECUTE)));
        assert!(tolerates(&everything, &taint("c", NO_SCHEDULE)));
        // ... but with an effect, only that effect.
        let no_schedule_only = toleration("", "Exists", "", "NoSchedule");
        assert!(!tolerates(&no_schedule_only, &taint("c", NO_EXECUTE)));
    }

    #[test]
    fn an_unknown_operator_tolerates_nothing() {
        assert!(!tolerates(
            &toleration("k", "Gt", "", ""),
            &taint("k", NO_SCHEDULE)
        ));
    }

    #[test]
    fn first_untolerated_skips_irrelevant_and_tolerated_taints() {
        let taints = vec![
            taint("soft", PREFER_NO_SCHEDULE),
            taint("ok", NO_SCHEDULE),
            valued("bad", "x", NO_EXECUTE),
        ];
        let tols = vec![toleration("ok", "Exists", "", "")];
        let found = first_untolerated(&taints, &tols, |t| t.effect != PREFER_NO_SCHEDULE);
        assert_eq!(found.map(|t| t.key.as_str()), Some("bad"));
    }
}
