//! The control plane driven by the real kubectl, as a user would.

mod common;

use std::time::Duration;

use common::Cluster;

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: app
    image: busybox:1.35
    command: ["sleep", "3600"]
"#;

// One user session, top to bottom, as a user would type it.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespace_pod_lifecycle_with_kubectl() {
    let cluster = Cluster::start().await;
    assert!(
        cluster
            .ok(&["get", "namespaces"])
            .await
            .contains("kube-node-lease")
    );
    assert_eq!(
        cluster.ok(&["create", "namespace", "demo"]).await.trim(),
        "namespace/demo created"
    );

    let pod = cluster.manifest("pod.yaml", POD);
    assert_eq!(
        cluster
            .ok(&["-n", "demo", "apply", "-f", &pod])
            .await
            .trim(),
        "pod/web created"
    );
    let wide = cluster
        .ok(&["-n", "demo", "get", "pods", "-o", "wide"])
        .await;
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    let row: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "0/1", "Pending", "0"]);
    assert_eq!(&row[5..7], ["<none>", "<none>"]);

    let describe = cluster.ok(&["-n", "demo", "describe", "pod", "web"]).await;
    for needle in [
        "Name:",
        "web",
        "Namespace:",
        "demo",
        "Status:",
        "Pending",
        "Image:",
        "busybox:1.35",
        "QoS Class:",
        "BestEffort",
    ] {
        assert!(
            describe.contains(needle),
            "describe lacks {needle:?}:\n{describe}"
        );
    }

    assert_eq!(
        cluster
            .ok(&["-n", "demo", "label", "pod", "web", "tier=front"])
            .await
            .trim(),
        "pod/web labeled"
    );
    let labels = cluster
        .ok(&[
            "-n",
            "demo",
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.metadata.labels}",
        ])
        .await;
    assert!(
        labels.contains("\"tier\":\"front\"") && labels.contains("\"app\":\"web\""),
        "{labels}"
    );
    let patched = cluster
        .ok(&[
            "-n",
            "demo",
            "patch",
            "pod",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":null}}}"#,
        ])
        .await;
    assert_eq!(patched.trim(), "pod/web patched");
    assert_eq!(
        cluster
            .ok(&["-n", "demo", "get", "pods", "-l", "tier", "-o", "name"])
            .await
            .trim(),
        ""
    );
    assert_eq!(
        cluster
            .ok(&["-n", "demo", "get", "pods", "-l", "app=web", "-o", "name"])
            .await
            .trim(),
        "pod/web"
    );

    // Applying again with a changed field updates the object; unchanged, it does nothing.
    assert_eq!(
        cluster
            .ok(&["-n", "demo", "apply", "-f", &pod])
            .await
            .trim(),
        "pod/web unchanged"
    );
    let changed = cluster.manifest("pod2.yaml", &POD.replace("busybox:1.35", "busybox:1.36"));
    assert_eq!(
        cluster
            .ok(&["-n", "demo", "apply", "-f", &changed])
            .await
            .trim(),
        "pod/web configured"
    );
    let image = cluster
        .ok(&[
            "-n",
            "demo",
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(image, "busybox:1.36");

    // A watch sees the deletion.
    let watch_cluster = cluster.kubeconfig.clone();
    let watch_process = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::kubectl_path())
            .args([
                "--kubeconfig",
                watch_cluster.to_str().unwrap(),
                "-n",
                "demo",
                "get",
                "pods",
                "-w",
                "--output-watch-events",
                "--request-timeout=8s",
            ])
            .output()
            .unwrap()
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cluster
            .ok(&["-n", "demo", "delete", "pod", "web"])
            .await
            .trim(),
        "pod \"web\" deleted"
    );
    let watched = String::from_utf8_lossy(&watch_process.await.unwrap().stdout).into_owned();
    assert!(
        watched
            .lines()
            .any(|l| l.starts_with("ADDED") && l.contains("web")),
        "{watched}"
    );
    assert!(
        watched
            .lines()
            .any(|l| l.starts_with("DELETED") && l.contains("web")),
        "{watched}"
    );
    assert_eq!(
        cluster
            .ok(&["-n", "demo", "get", "pods", "-o", "name"])
            .await
            .trim(),
        ""
    );

    // Deleting the namespace deletes what is in it, then the namespace.
    let cm = cluster.manifest(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    cluster.ok(&["-n", "demo", "apply", "-f", &cm]).await;
    cluster
        .ok(&["delete", "namespace", "demo", "--timeout=30s"])
        .await;
    let gone = cluster.kubectl(&["get", "namespace", "demo"]).await;
    assert!(String::from_utf8_lossy(&gone.stderr).contains("namespaces \"demo\" not found"));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn explain_prints_field_documentation() {
    let cluster = Cluster::start().await;
    let explained = cluster.ok(&["explain", "pod.spec.containers"]).await;
    assert!(
        explained.contains("FIELD: containers <[]Container>"),
        "{explained}"
    );
    assert!(
        explained.contains("List of containers belonging to the pod."),
        "{explained}"
    );
    assert!(explained.contains("image\t<string>"), "{explained}");
    let node = cluster.ok(&["explain", "node.status.conditions"]).await;
    assert!(node.contains("NodeCondition"), "{node}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_manifests_are_refused_like_kube_apiserver_and_nothing_is_stored() {
    let cluster = Cluster::start().await;
    let unknown_field = cluster.manifest(
        "unknown.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: a\n    image: x\n    imagee: y\n",
    );
    let out = cluster.kubectl(&["apply", "-f", &unknown_field]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].imagee""#),
        "{stderr}"
    );

    let invalid = cluster.manifest(
        "invalid.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  containers:\n  - name: a\n  - name: a\n    image: x\n",
    );
    let out = cluster.kubectl(&["apply", "-f", &invalid]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"The Pod "Bad_Name" is invalid"#),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.containers[0].image: Required value"),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.containers[1].name: Duplicate value: \"a\""),
        "{stderr}"
    );

    let wrong_type = cluster.manifest(
        "type.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: typed\nspec:\n  containers:\n  - name: a\n    image: x\n    ports:\n    - containerPort: eighty\n",
    );
    let out = cluster.kubectl(&["apply", "-f", &wrong_type]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("spec.containers[0].ports[0].containerPort"),
        "{stderr}"
    );

    assert_eq!(
        cluster
            .ok(&["get", "pods", "-A", "-o", "name"])
            .await
            .trim(),
        ""
    );
    cluster.stop().await;
}

// kubectl reads /openapi/v2 through client-go's discovery client, which only takes protobuf:
// `explain -o plaintext-openapiv2` renders from it, `--validate=strict` still has the server
// refuse unknown fields, and `get --raw` shows the JSON form.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_v2_serves_explain_and_strict_validation() {
    let cluster = Cluster::start().await;
    let explained = cluster
        .ok(&[
            "explain",
            "pod.spec.containers",
            "--output=plaintext-openapiv2",
        ])
        .await;
    assert!(explained.contains("KIND:     Pod"), "{explained}");
    assert!(
        explained.contains("RESOURCE: containers <[]Object>"),
        "{explained}"
    );
    assert!(
        explained.contains("List of containers belonging to the pod."),
        "{explained}"
    );
    assert!(explained.contains("image\t<string>"), "{explained}");
    let lease = cluster
        .ok(&[
            "explain",
            "lease.spec.holderIdentity",
            "--output=plaintext-openapiv2",
        ])
        .await;
    assert!(lease.contains("KIND:     Lease"), "{lease}");
    assert!(lease.contains("coordination.k8s.io"), "{lease}");
    assert!(
        lease.contains("FIELD:    holderIdentity <string>"),
        "{lease}"
    );

    let good = cluster.manifest("good.yaml", POD);
    assert_eq!(
        cluster
            .ok(&["apply", "--validate=strict", "-f", &good])
            .await
            .trim(),
        "pod/web created"
    );
    let unknown_field = cluster.manifest(
        "unknown.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  a: b\nextra: y\n",
    );
    let out = cluster
        .kubectl(&["apply", "--validate=strict", "-f", &unknown_field])
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r#"unknown field "extra""#), "{stderr}");

    let raw = cluster.ok(&["get", "--raw", "/openapi/v2"]).await;
    let doc: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(doc["swagger"], "2.0");
    assert!(doc["definitions"]["io.k8s.api.core.v1.Node"].is_object());
    cluster.stop().await;
}
