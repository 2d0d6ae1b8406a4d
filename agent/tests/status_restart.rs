//! Restart decisions and back-off (upstream `ShouldContainerBeRestarted`, `doBackOff`,
//! `flowcontrol.Backoff`, image pull back-off).

#[path = "status_common.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{at, container, created, exited, pod, running, runtime, unknown};
use ferrolet_agent::status::backoff::{crash_loop_back_off, err_image_pull, format_pod};
use ferrolet_agent::status::restart::{container_hash, should_container_be_restarted};
use ferrolet_agent::status::time::go_duration;
use ferrolet_agent::status::{
    ContainerBackoff, ContainerKey, ImageKey, ImagePullBackoff, RestartPolicy, WaitingReason,
    should_restart,
};
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

#[test]
fn should_restart_follows_policy_and_exit_code() {
    let ok = exited("app", 0, 0, 0, 1);
    let failed = exited("app", 0, 1, 0, 1);
    let cases = [
        (RestartPolicy::Always, &ok, true),
        (RestartPolicy::Always, &failed, true),
        (RestartPolicy::OnFailure, &ok, false),
        (RestartPolicy::OnFailure, &failed, true),
        (RestartPolicy::Never, &ok, false),
        (RestartPolicy::Never, &failed, false),
    ];
    for (policy, last, expected) in cases {
        assert_eq!(
            should_restart(policy, last),
            expected,
            "{policy:?} exit {}",
            last.exit_code
        );
    }
}

#[test]
fn running_is_never_restarted_created_and_unknown_always_are() {
    for policy in [
        RestartPolicy::Always,
        RestartPolicy::OnFailure,
        RestartPolicy::Never,
    ] {
        assert!(!should_restart(policy, &running("app", 0, 0)));
        assert!(should_restart(policy, &created("app", 0, 0)));
        assert!(should_restart(policy, &unknown("app", 0, 0)));
    }
}

#[test]
fn container_without_instance_starts_unless_pod_is_deleted() {
    let mut p = pod("Never", vec![], vec![container("app")]);
    let empty = runtime(vec![]);
    assert!(should_container_be_restarted(&p, "app", &empty));
    p.metadata.deletion_timestamp = Some(Time(at(5)));
    assert!(!should_container_be_restarted(&p, "app", &empty));
    let failed = runtime(vec![exited("app", 0, 1, 0, 1)]);
    p.metadata.deletion_timestamp = None;
    assert!(!should_container_be_restarted(&p, "app", &failed));
}

#[test]
fn restart_policy_defaults_to_always() {
    let mut p = pod("Never", vec![], vec![container("app")]);
    assert_eq!(RestartPolicy::of(&p), RestartPolicy::Never);
    p.spec.as_mut().expect("spec").restart_policy = None;
    assert_eq!(RestartPolicy::of(&p), RestartPolicy::Always);
}

#[test]
fn backoff_delays_double_from_10s_to_300s() {
    let mut backoff = ContainerBackoff::new();
    let key = ContainerKey::new("uid-1", "app");
    let mut delays = Vec::new();
    let mut now = 0;
    for _ in 0..8 {
        // Each instance crashes right after starting, so the back-off never resets.
        now += 1;
        delays.push(backoff.next_delay(key.clone(), at(now), at(now)).as_secs());
    }
    assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
}

#[test]
fn crash_loop_waits_for_the_delay_after_the_last_exit() {
    let p = pod("Always", vec![], vec![container("app")]);
    let mut backoff = ContainerBackoff::new();
    // First start: never exited, always admitted.
    assert_eq!(backoff.admit(&p, "app", None, at(0)), Ok(()));
    // First crash at 1: restarted at once, next crash waits 10 s.
    assert_eq!(backoff.admit(&p, "app", Some(at(1)), at(1)), Ok(()));
    // Second crash at 2: 10 s from the exit.
    let refused = backoff.admit(&p, "app", Some(at(2)), at(5));
    assert_eq!(
        refused,
        Err(WaitingReason::new(
            "CrashLoopBackOff",
            "back-off 10s restarting failed container=app pod=web_default(uid-1)"
        ))
    );
    let key = ContainerKey::new("uid-1", "app");
    assert_eq!(
        backoff.in_backoff(&key, at(2), at(5)),
        Some(Duration::from_secs(7))
    );
    assert_eq!(backoff.in_backoff(&key, at(2), at(12)), None);
    assert_eq!(backoff.admit(&p, "app", Some(at(2)), at(12)), Ok(()));
    // Third crash: 20 s.
    let refused = backoff.admit(&p, "app", Some(at(13)), at(13));
    assert_eq!(
        refused.map_err(|w| w.message),
        Err("back-off 20s restarting failed container=app pod=web_default(uid-1)".to_owned())
    );
}

#[test]
fn backoff_resets_after_the_container_ran_for_ten_minutes() {
    let mut backoff = ContainerBackoff::new();
    let key = ContainerKey::new("uid-1", "app");
    let mut now = 0;
    for _ in 0..6 {
        now += 1;
        backoff.next_delay(key.clone(), at(now), at(now));
    }
    assert_eq!(backoff.delay(&key), Duration::from_mins(5));
    let restarted = now;

    // It ran 9 minutes: still in back-off, and the next delay stays at the cap.
    let finished = restarted + 9 * 60;
    assert!(
        backoff
            .in_backoff(&key, at(finished), at(finished))
            .is_some()
    );

    // It ran 10 minutes and 1 second: no back-off, and it starts over at 10 s.
    let finished = restarted + 10 * 60 + 1;
    assert_eq!(backoff.in_backoff(&key, at(finished), at(finished)), None);
    assert_eq!(
        backoff.next_delay(key.clone(), at(finished), at(finished)),
        Duration::from_secs(10)
    );
}

#[test]
fn gc_forgets_quiet_containers() {
    let mut backoff = ContainerBackoff::new();
    let key = ContainerKey::new("uid-1", "app");
    backoff.next_delay(key.clone(), at(0), at(0));
    backoff.gc(at(600));
    assert_eq!(backoff.delay(&key), Duration::from_secs(10));
    backoff.gc(at(601));
    assert_eq!(backoff.delay(&key), Duration::ZERO);
}

#[test]
fn crash_loop_message_uses_go_duration_format() {
    let p = pod("Always", vec![], vec![container("app")]);
    let cases = [
        (
            20,
            "back-off 20s restarting failed container=app pod=web_default(uid-1)",
        ),
        (
            80,
            "back-off 1m20s restarting failed container=app pod=web_default(uid-1)",
        ),
        (
            300,
            "back-off 5m0s restarting failed container=app pod=web_default(uid-1)",
        ),
    ];
    for (seconds, message) in cases {
        let reason = crash_loop_back_off(&p, "app", Duration::from_secs(seconds));
        assert_eq!(reason.reason, "CrashLoopBackOff");
        assert_eq!(reason.message, message);
    }
    assert_eq!(format_pod(&p), "web_default(uid-1)");
}

#[test]
fn go_duration_matches_go() {
    let cases = [
        (Duration::ZERO, "0s"),
        (Duration::from_secs(10), "10s"),
        (Duration::from_secs(160), "2m40s"),
        (Duration::from_hours(1), "1h0m0s"),
        (Duration::from_millis(1500), "1.5s"),
        (Duration::from_millis(250), "250ms"),
    ];
    for (d, text) in cases {
        assert_eq!(go_duration(d), text);
    }
}

#[test]
fn image_pull_backoff_counts_from_the_last_failure() {
    let mut pulls = ImagePullBackoff::new();
    let key = ImageKey::new("uid-1", "registry.local/app:1");
    assert_eq!(pulls.admit(&key, at(0)), Ok(()));
    // The failed pull is reported as ErrImagePull ...
    assert_eq!(
        err_image_pull("manifest unknown").reason,
        "ErrImagePull".to_owned()
    );
    assert_eq!(
        pulls.record_failure(key.clone(), at(0)),
        Duration::from_secs(10)
    );
    // ... and the next tries within the delay as ImagePullBackOff.
    assert_eq!(
        pulls.admit(&key, at(4)),
        Err(WaitingReason::new(
            "ImagePullBackOff",
            "Back-off pulling image \"registry.local/app:1\""
        ))
    );
    assert_eq!(pulls.in_backoff(&key, at(4)), Some(Duration::from_secs(6)));
    assert_eq!(pulls.admit(&key, at(10)), Ok(()));
    assert_eq!(
        pulls.record_failure(key.clone(), at(10)),
        Duration::from_secs(20)
    );
    assert!(pulls.in_backoff(&key, at(29)).is_some());
    assert_eq!(pulls.in_backoff(&key, at(30)), None);
    // Quiet for more than 10 minutes: starts over.
    assert_eq!(
        pulls.record_failure(key, at(10 + 601)),
        Duration::from_secs(10)
    );
}

#[test]
fn container_hash_ignores_resources_but_not_the_image() {
    let base = container("app");
    let mut resized = base.clone();
    resized.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([(
            "cpu".to_owned(),
            Quantity("500m".to_owned()),
        )])),
        ..ResourceRequirements::default()
    });
    let mut edited = base.clone();
    edited.image = Some("registry.local/app:2".to_owned());
    assert_eq!(container_hash(&base), container_hash(&base.clone()));
    assert_eq!(container_hash(&base), container_hash(&resized));
    assert_ne!(container_hash(&base), container_hash(&edited));
}
