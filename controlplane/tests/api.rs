//! API semantics through a real client (kube-rs) against a running control plane.

mod common;

use std::collections::BTreeMap;

use common::Cluster;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .unwrap()
}

fn status_code(err: &kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_with_one_resource_version_give_one_conflict() {
    let cluster = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");
    for round in 0..10 {
        let name = format!("race-{round}");
        let current = api
            .create(&PostParams::default(), &configmap(&name))
            .await
            .unwrap();
        let (mut a, mut b) = (current.clone(), current);
        a.data = Some(BTreeMap::from([("k".into(), "a".into())]));
        b.data = Some(BTreeMap::from([("k".into(), "b".into())]));
        let pp = PostParams::default();
        let (ra, rb) = tokio::join!(api.replace(&name, &pp, &a), api.replace(&name, &pp, &b));
        let outcomes = [ra.as_ref().map(|_| ()), rb.as_ref().map(|_| ())];
        assert_eq!(
            outcomes.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {outcomes:?}"
        );
        let err = outcomes.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(status_code(err), 409);
        if let kube::Error::Api(status) = err {
            assert_eq!(status.reason, "Conflict");
            assert!(
                status.message.contains("the object has been modified"),
                "{}",
                status.message
            );
        }
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_paginate_and_select() {
    let cluster = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");
    for i in 0..25 {
        let mut cm = configmap(&format!("page-{i:02}"));
        cm.metadata.labels = Some(BTreeMap::from([(
            "parity".into(),
            if i % 2 == 0 { "even" } else { "odd" }.into(),
        )]));
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().labels("parity").limit(10);
    let mut pages = 0;
    loop {
        let page = api.list(&params).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 25);
    let evens = api
        .list(&ListParams::default().labels("parity=even"))
        .await
        .unwrap();
    assert_eq!(evens.items.len(), 13);
    // notin also matches objects without the label (the namespace's kube-root-ca.crt).
    let not_in = api
        .list(&ListParams::default().labels("parity notin (even)"))
        .await
        .unwrap();
    assert_eq!(not_in.items.len(), 12 + 1);
    let odd = api
        .list(&ListParams::default().labels("parity,parity notin (even)"))
        .await
        .unwrap();
    assert!(
        odd.items
            .iter()
            .all(|c| c.metadata.labels.as_ref().unwrap()["parity"] == "odd")
    );
    assert_eq!(odd.items.len(), 12);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=page-07"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let bad = api
        .list(&ListParams::default().fields("spec.nodeName=x"))
        .await
        .unwrap_err();
    assert_eq!(status_code(&bad), 400);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_resumes_and_bookmarks() {
    let cluster = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");
    let first = api
        .create(&PostParams::default(), &configmap("w1"))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    api.create(&PostParams::default(), &configmap("w2"))
        .await
        .unwrap();
    api.delete("w1", &DeleteParams::default()).await.unwrap();
    let stream = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap();
    futures::pin_mut!(stream);
    let mut events = Vec::new();
    while events.len() < 2 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(cm) => events.push(("ADDED", cm.metadata.name.unwrap())),
            WatchEvent::Deleted(cm) => events.push(("DELETED", cm.metadata.name.unwrap())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        events,
        [("ADDED", "w2".to_owned()), ("DELETED", "w1".to_owned())]
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_are_deleted_gracefully_once_scheduled() {
    let cluster = Cluster::start().await;
    let client = cluster.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "graceful", "finalizers": ["test.ferrolet.io/hold"]},
        "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "busybox:1.35"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deleted = pods
        .delete("graceful", &DeleteParams::default())
        .await
        .unwrap();
    let marked = deleted.left().expect("graceful deletion returns the pod");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    // The kubelet confirms with grace 0; the finalizer still holds it.
    pods.delete(
        "graceful",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let held = pods.get("graceful").await.unwrap();
    assert_eq!(held.metadata.deletion_grace_period_seconds, Some(0));
    // Removing the finalizer lets it go.
    pods.patch(
        "graceful",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let err = pods.get("graceful").await.unwrap_err();
    assert_eq!(status_code(&err), 404);

    // An unscheduled pod goes at once.
    let pending: Pod = serde_json::from_value(serde_json::json!({"metadata": {"generateName": "pending-"}, "spec": {"containers": [{"name": "a", "image": "x"}]}})).unwrap();
    let created = pods.create(&PostParams::default(), &pending).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert!(
        name.starts_with("pending-") && name.len() == "pending-".len() + 5,
        "{name}"
    );
    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    assert_eq!(status_code(&pods.get(&name).await.unwrap_err()), 404);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_get_cluster_ips_and_nodes_report_status() {
    let cluster = Cluster::start().await;
    let client = cluster.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let kubernetes = services.get("kubernetes").await.unwrap();
    assert_eq!(
        kubernetes.spec.unwrap().cluster_ip.as_deref(),
        Some("10.96.0.1")
    );
    let svc: Service = serde_json::from_value(serde_json::json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap();
    let created = services.create(&PostParams::default(), &svc).await.unwrap();
    let spec = created.spec.unwrap();
    let ip: std::net::Ipv4Addr = spec.cluster_ip.unwrap().parse().unwrap();
    assert!(
        ip.octets()[0] == 10 && (96..112).contains(&ip.octets()[1]),
        "{ip} outside 10.96.0.0/12"
    );
    assert_eq!(
        spec.ports.unwrap()[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
    );
    let taken: Service = serde_json::from_value(serde_json::json!({"metadata": {"name": "dup"}, "spec": {"clusterIP": ip.to_string(), "ports": [{"port": 80}]}})).unwrap();
    assert_eq!(
        status_code(
            &services
                .create(&PostParams::default(), &taken)
                .await
                .unwrap_err()
        ),
        422
    );

    let nodes: Api<Node> = Api::all(client);
    let node: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}});
    nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Strategic(status))
        .await
        .unwrap();
    let n1 = nodes.get("n1").await.unwrap();
    assert_eq!(n1.status.unwrap().conditions.unwrap()[0].status, "False");
    // The main resource cannot change the status.
    let sneaky =
        serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Strategic(sneaky))
        .await
        .unwrap();
    assert_eq!(
        nodes
            .get("n1")
            .await
            .unwrap()
            .status
            .unwrap()
            .conditions
            .unwrap()[0]
            .status,
        "False"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsupported_patch_types_get_415() {
    let cluster = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");
    api.create(&PostParams::default(), &configmap("ssa"))
        .await
        .unwrap();
    let err = api
        .patch("ssa", &PatchParams::apply("test"), &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}})))
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), 415);
    if let kube::Error::Api(status) = err {
        assert!(
            status.message.contains("server-side apply"),
            "{}",
            status.message
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_of_a_watch_with_selectors_sees_transitions() {
    let cluster = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let stream = api
        .watch(&WatchParams::default().labels("stage=live"), &rv)
        .await
        .unwrap();
    futures::pin_mut!(stream);
    let cm = api
        .create(&PostParams::default(), &configmap("flip"))
        .await
        .unwrap();
    assert!(cm.metadata.labels.is_none());
    let label = |v: &str| Patch::Merge(serde_json::json!({"metadata": {"labels": {"stage": v}}}));
    api.patch("flip", &PatchParams::default(), &label("live"))
        .await
        .unwrap();
    api.patch("flip", &PatchParams::default(), &label("retired"))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match stream.next().await.unwrap().unwrap() {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            _ => {}
        }
    }
    assert_eq!(
        kinds,
        ["ADDED", "DELETED"],
        "starting to match is ADDED, stopping is DELETED"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_requests_reviews_and_access_reviews() {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let cluster = Cluster::start().await;
    let client = cluster.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "holder"}, "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x"}]}})).unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let request: TokenRequest = serde_json::from_value(serde_json::json!({"spec": {
        "audiences": ["https://kubernetes.default.svc.cluster.local"],
        "expirationSeconds": 3600,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "holder", "uid": pod.metadata.uid},
    }}))
    .unwrap();
    let issued: TokenRequest = accounts
        .create_subresource("token", "default", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = issued.status.unwrap().token;
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = |token: &str| -> TokenReview {
        serde_json::from_value(serde_json::json!({"spec": {"token": token}})).unwrap()
    };
    let reviewed = reviews
        .create(&PostParams::default(), &review(&token))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(reviewed.authenticated, Some(true), "{reviewed:?}");
    let user = reviewed.user.unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:default:default")
    );
    assert!(
        user.groups
            .unwrap()
            .contains(&"system:serviceaccounts:default".to_owned())
    );
    assert_eq!(
        user.extra.unwrap()["authentication.kubernetes.io/pod-name"],
        ["holder"]
    );

    // The token dies with its pod.
    pods.delete(
        "holder",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let after = reviews
        .create(&PostParams::default(), &review(&token))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(after.authenticated, Some(true));
    let forged = reviews
        .create(&PostParams::default(), &review("not.a.token"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(forged.authenticated, Some(true));

    // A node may patch the status of its own pods only.
    for (node, pod_node, allowed) in [("n1", "n1", true), ("n2", "n1", false)] {
        let name = format!("on-{pod_node}-{node}");
        let p: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": {"nodeName": pod_node, "containers": [{"name": "a", "image": "x"}]}})).unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
        let sar: SubjectAccessReview = serde_json::from_value(serde_json::json!({"spec": {
            "user": format!("system:node:{node}"),
            "groups": ["system:nodes", "system:authenticated"],
            "resourceAttributes": {"namespace": "default", "verb": "patch", "resource": "pods", "subresource": "status", "name": name, "version": "v1"},
        }}))
        .unwrap();
        let sars: Api<SubjectAccessReview> = Api::all(client.clone());
        let status = sars
            .create(&PostParams::default(), &sar)
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(
            status.allowed, allowed,
            "{node} patching a pod on {pod_node}: {status:?}"
        );
    }
    cluster.stop().await;
}

/// Every `$ref` in a Swagger 2.0 document names one of its definitions.
fn unresolved_refs(value: &serde_json::Value, doc: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                let resolved = r
                    .strip_prefix("#/definitions/")
                    .is_some_and(|name| doc["definitions"][name].is_object());
                if !resolved {
                    out.push(r.clone());
                }
            }
            map.values().for_each(|v| unresolved_refs(v, doc, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| unresolved_refs(v, doc, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_v2_is_served_as_json_with_an_etag() {
    let cluster = Cluster::start().await;
    let client = cluster.client().await;
    let request = |accept: &str, etag: Option<&str>| {
        let mut builder = http::Request::get("/openapi/v2").header("Accept", accept);
        if let Some(tag) = etag {
            builder = builder.header("If-None-Match", tag);
        }
        builder.body(Vec::new()).unwrap()
    };
    let response = client
        .send(request("application/json", None).map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["swagger"], "2.0");
    let pod = &doc["definitions"]["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    assert_eq!(
        pod["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.PodSpec"
    );
    let containers = &doc["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(
        containers["items"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.Container"
    );
    let lease = &doc["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"];
    assert_eq!(lease["patch"]["x-kubernetes-action"], "patch");
    assert_eq!(
        lease["patch"]["x-kubernetes-group-version-kind"]["kind"],
        "Lease"
    );
    assert!(doc["paths"]["/api/v1/nodes/{name}/status"]["put"].is_object());
    let mut unresolved = Vec::new();
    unresolved_refs(&doc, &doc, &mut unresolved);
    assert!(unresolved.is_empty(), "{unresolved:?}");

    let again = client
        .send(request("application/json", Some(&etag)).map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let refused = client
        .send(request("text/html", None).map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);
    cluster.stop().await;
}
