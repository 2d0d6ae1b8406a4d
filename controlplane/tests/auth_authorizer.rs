//! The authorization table, kube-apiserver's 403 messages, and `NodeRestriction` admission.

use ferrolet_controlplane::auth::node_restriction::{self, AdmissionDenied};
use ferrolet_controlplane::auth::{
    Decision, InMemoryObjectLookup, PodBinding, RequestAttributes, UserInfo, authorize,
    forbidden_message, forbidden_message_with_reason,
};
use serde_json::json;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..UserInfo::default()
    }
    .with_authenticated_group()
}

fn admin() -> UserInfo {
    user("kubernetes-admin", &["system:masters"])
}
fn node1() -> UserInfo {
    user("system:node:n1", &["system:nodes"])
}
fn service_account() -> UserInfo {
    user(
        "system:serviceaccount:default:builder",
        &["system:serviceaccounts", "system:serviceaccounts:default"],
    )
}
fn alice() -> UserInfo {
    user("alice", &["dev"])
}

fn lookup() -> InMemoryObjectLookup {
    let lookup = InMemoryObjectLookup::new();
    let pod = |uid: &str, node: &str, sa: &str| PodBinding {
        uid: uid.to_owned(),
        node_name: node.to_owned(),
        service_account_name: sa.to_owned(),
    };
    lookup.put_pod("default", "web-0", pod("uid-web-0", "n1", "builder"));
    lookup.put_pod("default", "nginx", pod("uid-nginx", "n2", "default"));
    lookup.put_pod("default", "pending", pod("uid-pending", "", "default"));
    lookup
}

fn res(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> RequestAttributes {
    RequestAttributes::resource(verb, group, resource, namespace, name)
}

fn sub(
    verb: &str,
    resource: &str,
    subresource: &str,
    namespace: &str,
    name: &str,
) -> RequestAttributes {
    res(verb, "", resource, namespace, name).with_subresource(subresource)
}

fn path(verb: &str, p: &str) -> RequestAttributes {
    RequestAttributes::non_resource(verb, p)
}

const LEASES: &str = "coordination.k8s.io";
const STORAGE: &str = "storage.k8s.io";

/// The authorization table: `decision user verb group resource[/subresource] namespace name`,
/// `-` for empty; a resource starting with `/` is a non-resource path.
const TABLE: &str = "
# system:masters may do everything
allow admin     delete -                     nodes                         -               n9
allow admin     list   apps                  deployments                   -               -
allow admin     get    -                     /metrics                      -               -
# non-resource URLs
allow anonymous get    -                     /healthz                      -               -
allow anonymous get    -                     /livez                        -               -
allow anonymous get    -                     /readyz                       -               -
allow anonymous get    -                     /version                      -               -
deny  anonymous get    -                     /api                          -               -
deny  anonymous get    -                     /openid/v1/jwks               -               -
allow alice     get    -                     /api                          -               -
allow alice     get    -                     /api/v1                       -               -
allow alice     get    -                     /apis/apps/v1                 -               -
allow alice     get    -                     /openapi/v2                   -               -
allow alice     get    -                     /openapi/v3/api/v1            -               -
allow alice     get    -                     /.well-known/openid-configuration -           -
allow alice     get    -                     /openid/v1/jwks               -               -
deny  alice     get    -                     /metrics                      -               -
deny  alice     get    -                     /apiextras                    -               -
deny  alice     post   -                     /healthz                      -               -
allow node1     get    -                     /version                      -               -
allow sa        get    -                     /apis                         -               -
# nodes: Node objects
allow node1     get    -                     nodes                         -               n2
allow node1     list   -                     nodes                         -               -
allow node1     watch  -                     nodes                         -               -
allow node1     create -                     nodes                         -               -
allow node1     create -                     nodes                         -               n1
deny  node1     create -                     nodes                         -               n2
allow node1     patch  -                     nodes                         -               n1
allow node1     update -                     nodes                         -               n1
allow node1     patch  -                     nodes/status                  -               n1
allow node1     update -                     nodes/status                  -               n1
deny  node1     patch  -                     nodes                         -               n2
deny  node1     patch  -                     nodes/status                  -               n2
deny  node1     delete -                     nodes                         -               n1
deny  node1     get    -                     nodes/proxy                   -               n1
# nodes: leases
allow node1     get    coordination.k8s.io   leases                        kube-node-lease n1
allow node1     create coordination.k8s.io   leases                        kube-node-lease -
allow node1     update coordination.k8s.io   leases                        kube-node-lease n1
allow node1     patch  coordination.k8s.io   leases                        kube-node-lease n1
allow node1     delete coordination.k8s.io   leases                        kube-node-lease n1
deny  node1     update coordination.k8s.io   leases                        kube-node-lease n2
deny  node1     get    coordination.k8s.io   leases                        default         n1
deny  node1     list   coordination.k8s.io   leases                        kube-node-lease -
# nodes: pods
allow node1     get    -                     pods                          default         nginx
allow node1     list   -                     pods                          -               -
allow node1     watch  -                     pods                          default         -
allow node1     create -                     pods                          kube-system     -
allow node1     patch  -                     pods/status                   default         web-0
allow node1     update -                     pods/status                   default         web-0
deny  node1     patch  -                     pods/status                   default         nginx
deny  node1     patch  -                     pods/status                   default         pending
allow node1     delete -                     pods                          default         web-0
deny  node1     delete -                     pods                          default         nginx
allow node1     delete -                     pods                          default         gone
allow node1     create -                     pods/eviction                 default         web-0
deny  node1     create -                     pods/eviction                 default         nginx
deny  node1     update -                     pods                          default         web-0
deny  node1     patch  -                     pods                          default         web-0
deny  node1     create -                     pods/exec                     default         web-0
deny  node1     get    -                     pods/log                      default         web-0
deny  node1     deletecollection -           pods                          default         -
# nodes: events
allow node1     create -                     events                        kube-system     -
allow node1     patch  -                     events                        default         e1
allow node1     update events.k8s.io         events                        default         e1
deny  node1     delete -                     events                        default         e1
deny  node1     list   -                     events                        default         -
# nodes: reads
allow node1     list   -                     services                      -               -
allow node1     watch  -                     endpoints                     default         -
deny  node1     create -                     services                      default         -
allow node1     get    -                     namespaces                    -               default
deny  node1     list   -                     namespaces                    -               -
allow node1     get    -                     configmaps                    default         c
allow node1     watch  -                     secrets                       default         -
deny  node1     list   -                     secrets                       -               -
deny  node1     create -                     secrets                       default         -
allow node1     get    -                     persistentvolumeclaims        default         data
allow node1     list   -                     persistentvolumes             -               -
deny  node1     update -                     persistentvolumeclaims/status default         data
allow node1     watch  storage.k8s.io        csidrivers                    -               -
allow node1     list   node.k8s.io           runtimeclasses                -               -
# nodes: CSINodes
allow node1     get    storage.k8s.io        csinodes                      -               n2
allow node1     create storage.k8s.io        csinodes                      -               -
allow node1     update storage.k8s.io        csinodes                      -               n1
allow node1     delete storage.k8s.io        csinodes                      -               n1
deny  node1     update storage.k8s.io        csinodes                      -               n2
# nodes: tokens, reviews, CSRs
allow node1     create -                     serviceaccounts/token         default         builder
deny  node1     create -                     serviceaccounts/token         default         default
deny  node1     create -                     serviceaccounts/token         kube-system     builder
deny  node1     get    -                     serviceaccounts               default         builder
allow node1     create authentication.k8s.io tokenreviews                  -               -
allow node1     create authorization.k8s.io  subjectaccessreviews          -               -
allow node1     create authorization.k8s.io  localsubjectaccessreviews     default         -
allow node1     create certificates.k8s.io   certificatesigningrequests    -               -
allow node1     watch  certificates.k8s.io   certificatesigningrequests    -               -
deny  node1     update certificates.k8s.io   certificatesigningrequests/approval -         c
deny  node1     delete certificates.k8s.io   certificatesigningrequests    -               c
allow node1     create authorization.k8s.io  selfsubjectaccessreviews      -               -
deny  node1     list   apps                  deployments                   default         -
deny  unnamed   list   -                     pods                          -               -
deny  nogroup   list   -                     pods                          -               -
# everyone else
deny  sa        get    -                     pods                          default         web-0
allow sa        create authentication.k8s.io selfsubjectreviews            -               -
allow sa        create authorization.k8s.io  selfsubjectrulesreviews       default         -
allow alice     create authorization.k8s.io  selfsubjectaccessreviews      -               -
deny  alice     list   -                     nodes                         -               -
deny  anonymous list   -                     pods                          default         -
deny  anonymous create authorization.k8s.io  selfsubjectaccessreviews      -               -
";

fn table_user(key: &str) -> UserInfo {
    match key {
        "admin" => admin(),
        "node1" => node1(),
        "sa" => service_account(),
        "alice" => alice(),
        "anonymous" => UserInfo::anonymous(),
        "unnamed" => user("system:node:", &["system:nodes"]),
        "nogroup" => user("system:node:n1", &[]),
        other => panic!("unknown user {other} in the table"),
    }
}

#[test]
fn authorization_table() {
    let lookup = lookup();
    let dash = |s: &str| {
        if s == "-" {
            String::new()
        } else {
            s.to_owned()
        }
    };
    let mut failures = Vec::new();
    let mut cases = 0;
    for line in TABLE
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [decision, user, verb, group, resource, namespace, name] = fields[..] else {
            panic!("malformed table line {line:?}");
        };
        let attrs = if resource.starts_with('/') {
            path(verb, resource)
        } else {
            let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
            res(verb, &dash(group), resource, &dash(namespace), &dash(name))
                .with_subresource(subresource)
        };
        cases += 1;
        match (decision, authorize(&table_user(user), &attrs, &lookup)) {
            ("allow", Decision::Allow) => {}
            ("deny", Decision::Deny { reason }) => {
                assert!(!reason.is_empty(), "{line}: a denial says why");
            }
            (_, got) => failures.push(format!("{line}\n    got {got:?}")),
        }
    }
    assert!(cases > 100, "the table has {cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn node_patching_another_nodes_pod_status_is_forbidden_with_upstream_message() {
    let node = node1();
    let attrs = sub("patch", "pods", "status", "default", "nginx");
    let Decision::Deny { reason } = authorize(&node, &attrs, &lookup()) else {
        panic!("must be denied");
    };
    assert_eq!(
        reason,
        "node \"n1\" can only update pod status for pods with spec.nodeName set to itself"
    );
    assert_eq!(
        forbidden_message(&node, &attrs),
        "pods \"nginx\" is forbidden: User \"system:node:n1\" cannot patch resource \"pods/status\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(
        forbidden_message_with_reason(&node, &attrs, &reason),
        "pods \"nginx\" is forbidden: User \"system:node:n1\" cannot patch resource \"pods/status\" in API group \"\" in the namespace \"default\": node \"n1\" can only update pod status for pods with spec.nodeName set to itself"
    );
}

#[test]
fn forbidden_messages_match_kube_apiserver() {
    let anonymous = UserInfo::anonymous();
    let cases = [
        (
            &anonymous,
            res("list", "", "pods", "default", ""),
            "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
        ),
        (
            &anonymous,
            res("list", "", "nodes", "", ""),
            "nodes is forbidden: User \"system:anonymous\" cannot list resource \"nodes\" in API group \"\" at the cluster scope",
        ),
        (
            &anonymous,
            path("get", "/metrics"),
            "forbidden: User \"system:anonymous\" cannot get path \"/metrics\"",
        ),
        (
            &node1(),
            res("patch", "", "nodes", "", "n2"),
            "nodes \"n2\" is forbidden: User \"system:node:n1\" cannot patch resource \"nodes\" in API group \"\" at the cluster scope",
        ),
        (
            &node1(),
            res("update", LEASES, "leases", "kube-node-lease", "n2"),
            "leases.coordination.k8s.io \"n2\" is forbidden: User \"system:node:n1\" cannot update resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-node-lease\"",
        ),
        (
            &node1(),
            sub("update", "nodes", "status", "", "n2"),
            "nodes \"n2\" is forbidden: User \"system:node:n1\" cannot update resource \"nodes/status\" in API group \"\" at the cluster scope",
        ),
        (
            &node1(),
            res("list", "apps", "deployments", "", ""),
            "deployments.apps is forbidden: User \"system:node:n1\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope",
        ),
    ];
    for (user, attrs, expected) in cases {
        assert_eq!(forbidden_message(user, &attrs), expected);
    }
    assert_eq!(
        forbidden_message_with_reason(&anonymous, &path("get", "/metrics"), ""),
        "forbidden: User \"system:anonymous\" cannot get path \"/metrics\"",
        "no reason, no colon"
    );
}

#[test]
fn denial_reasons_follow_upstream() {
    let lookup = lookup();
    let reason = |user: &UserInfo, attrs: RequestAttributes| match authorize(user, &attrs, &lookup)
    {
        Decision::Deny { reason } => reason,
        Decision::Allow => panic!("{attrs:?} must be denied"),
    };
    assert_eq!(
        reason(&node1(), res("patch", "", "nodes", "", "n2")),
        "node \"n1\" is not allowed to modify node \"n2\""
    );
    assert_eq!(
        reason(
            &node1(),
            res("update", LEASES, "leases", "kube-node-lease", "n2")
        ),
        "can only access node lease with the same name as the requesting node"
    );
    assert_eq!(
        reason(&node1(), res("get", LEASES, "leases", "default", "n1")),
        "can only access leases in the \"kube-node-lease\" system namespace"
    );
    assert_eq!(
        reason(&node1(), res("delete", "", "pods", "default", "nginx")),
        "node \"n1\" can only delete pods with spec.nodeName set to itself"
    );
    assert_eq!(
        reason(
            &node1(),
            sub("create", "serviceaccounts", "token", "default", "default")
        ),
        "no relationship found between node 'n1' and this object"
    );
    assert_eq!(
        reason(&node1(), res("list", "", "secrets", "", "")),
        "can only read namespaced object of this type"
    );
    assert_eq!(
        reason(
            &user("system:node:", &["system:nodes"]),
            res("get", "", "pods", "", "")
        ),
        "unknown node for user \"system:node:\""
    );
}

// ----- NodeRestriction admission ---------------------------------------------------------

fn admit(
    user: &UserInfo,
    attrs: &RequestAttributes,
    object: &serde_json::Value,
    old: Option<&serde_json::Value>,
) -> Result<(), AdmissionDenied> {
    node_restriction::admit(user, attrs, Some(object), old, &lookup())
}

fn mirror_pod(node: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("static-web-{node}"), "namespace": "kube-system",
            "annotations": {"kubernetes.io/config.mirror": "abc123"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node,
                                 "uid": "node-uid", "controller": true}],
        },
        "spec": {"nodeName": node, "containers": [{"name": "web", "image": "busybox"}]},
    })
}

fn denied(result: Result<(), AdmissionDenied>) -> String {
    result.expect_err("must be refused").message
}

#[test]
fn nodes_create_only_their_own_mirror_pods() {
    let create = res("create", "", "pods", "kube-system", "");
    admit(&node1(), &create, &mirror_pod("n1"), None).expect("own mirror pod");

    let mut plain = mirror_pod("n1");
    plain["metadata"]["annotations"] = json!({});
    assert_eq!(
        denied(admit(&node1(), &create, &plain, None)),
        "pods \"static-web-n1\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods"
    );
    let mut elsewhere = mirror_pod("n1");
    elsewhere["spec"]["nodeName"] = json!("n2");
    assert_eq!(
        denied(admit(&node1(), &create, &elsewhere, None)),
        "pods \"static-web-n1\" is forbidden: node \"n1\" can only create pods with spec.nodeName set to itself"
    );
    let mut orphan = mirror_pod("n1");
    orphan["metadata"]["ownerReferences"] = json!([]);
    assert!(
        denied(admit(&node1(), &create, &orphan, None))
            .ends_with("can only create pods with an owner reference set to itself")
    );
    let mut not_controller = mirror_pod("n1");
    not_controller["metadata"]["ownerReferences"][0]["controller"] = json!(false);
    assert!(
        denied(admit(&node1(), &create, &not_controller, None))
            .contains("controller owner reference")
    );

    let mut with_sa = mirror_pod("n1");
    with_sa["spec"]["serviceAccountName"] = json!("builder");
    assert!(
        denied(admit(&node1(), &create, &with_sa, None))
            .ends_with("can not create pods that reference a service account")
    );
    let mut with_secret = mirror_pod("n1");
    with_secret["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "token"}}]);
    assert!(
        denied(admit(&node1(), &create, &with_secret, None))
            .ends_with("can not create pods that reference secrets")
    );
    let mut with_config_map = mirror_pod("n1");
    with_config_map["spec"]["containers"][0]["envFrom"] =
        json!([{"configMapRef": {"name": "cfg"}}]);
    assert!(
        denied(admit(&node1(), &create, &with_config_map, None))
            .ends_with("can not create pods that reference configmaps")
    );
    let mut with_claim = mirror_pod("n1");
    with_claim["spec"]["volumes"] =
        json!([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]);
    assert!(
        denied(admit(&node1(), &create, &with_claim, None))
            .ends_with("can not create pods that reference persistentvolumeclaims")
    );

    // Other users are not restricted by this plugin.
    admit(&admin(), &create, &plain, None).expect("admin creates any pod");
}

#[test]
fn nodes_keep_to_their_own_node_object() {
    let node_object = |name: &str, labels: serde_json::Value| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}});
    let create = res("create", "", "nodes", "", "");
    admit(
        &node1(),
        &create,
        &node_object(
            "n1",
            json!({"kubernetes.io/hostname": "n1", "node.kubernetes.io/instance-type": "vm"}),
        ),
        None,
    )
    .expect("own node with kubelet labels");
    assert_eq!(
        denied(admit(
            &node1(),
            &create,
            &node_object("n2", json!({})),
            None
        )),
        "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
    );
    assert_eq!(
        denied(admit(
            &node1(),
            &create,
            &node_object("n1", json!({"node-role.kubernetes.io/control-plane": ""})),
            None
        )),
        "nodes \"n1\" is forbidden: node \"n1\" is not allowed to set the following labels: node-role.kubernetes.io/control-plane"
    );

    let update = sub("patch", "nodes", "status", "", "n1");
    let old = node_object("n1", json!({"kubernetes.io/hostname": "n1"}));
    let mut new = old.clone();
    new["status"] = json!({"phase": "Running"});
    admit(&node1(), &update, &new, Some(&old)).expect("status update");
    let mut relabeled = old.clone();
    relabeled["metadata"]["labels"]["node-restriction.kubernetes.io/pool"] = json!("gpu");
    assert_eq!(
        denied(admit(&node1(), &update, &relabeled, Some(&old))),
        "nodes \"n1\" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/pool"
    );
    let mut untainted = old.clone();
    untainted["spec"] = json!({"taints": [{"key": "k", "effect": "NoSchedule"}]});
    assert!(
        denied(admit(&node1(), &update, &untainted, Some(&old)))
            .ends_with("is not allowed to modify taints")
    );
}

#[test]
fn leases_and_csinodes_carry_the_node_name() {
    let lease = |name: &str| json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name, "namespace": "kube-node-lease"}});
    let create = res("create", LEASES, "leases", "kube-node-lease", "");
    admit(&node1(), &create, &lease("n1"), None).expect("own lease");
    assert_eq!(
        denied(admit(&node1(), &create, &lease("n2"), None)),
        "leases.coordination.k8s.io \"n2\" is forbidden: can only access node lease with the same name as the requesting node"
    );
    let csinode = json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": "n2"}, "spec": {"drivers": []}});
    assert_eq!(
        denied(admit(
            &node1(),
            &res("create", STORAGE, "csinodes", "", ""),
            &csinode,
            None
        )),
        "csinodes.storage.k8s.io \"n2\" is forbidden: can only access CSINode with the same name as the requesting node"
    );
}

#[test]
fn pod_status_updates_keep_labels() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}}, "spec": {"nodeName": "n1", "containers": []}});
    let attrs = sub("update", "pods", "status", "default", "web-0");
    let mut running = pod.clone();
    running["status"] = json!({"phase": "Running"});
    admit(&node1(), &attrs, &running, Some(&pod)).expect("status only");
    let mut relabeled = running.clone();
    relabeled["metadata"]["labels"]["app"] = json!("db");
    assert_eq!(
        denied(admit(&node1(), &attrs, &relabeled, Some(&pod))),
        "pods \"web-0\" is forbidden: node \"n1\" cannot update labels through pod status"
    );
}

#[test]
fn token_requests_of_nodes_are_bound_to_their_pods() {
    let attrs = sub("create", "serviceaccounts", "token", "default", "builder");
    let request = |bound: serde_json::Value| {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"audiences": [], "boundObjectRef": bound}})
    };
    admit(
        &node1(),
        &attrs,
        &request(json!({"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": "uid-web-0"})),
        None,
    )
    .expect("bound to its own pod");
    let message = |bound| denied(admit(&node1(), &attrs, &request(bound), None));
    assert_eq!(
        message(json!({"apiVersion": "v1", "kind": "Secret", "name": "s"})),
        "serviceaccounts \"builder\" is forbidden: node requested token not bound to a pod"
    );
    assert!(
        message(json!({"apiVersion": "v1", "kind": "Pod", "name": "web-0"}))
            .ends_with("node requested token with a pod binding without a uid")
    );
    assert!(
        message(json!({"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": "old"}))
            .contains("does not match the UID in record")
    );
    assert!(
        message(json!({"apiVersion": "v1", "kind": "Pod", "name": "nginx", "uid": "uid-nginx"}))
            .ends_with("node requested token bound to a pod scheduled on a different node")
    );
}
