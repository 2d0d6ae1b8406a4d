//! Randomly built strategic merge patches (deterministic seed) agree with upstream's (see
//! `patch_support`).

mod patch_support;

use ferrolet_controlplane::patch::PatchType;
use serde_json::{Value, json};

use patch_support::{Case, case, pod, run};

/// A small deterministic generator (xorshift64), so that the random cases are the same on
/// every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("small")).expect("small")
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A random selection of `items` in random order, at least `min` of them.
    fn subset<'a>(&mut self, items: &[&'a str], min: usize) -> Vec<&'a str> {
        let mut pool = items.to_vec();
        let count = min + self.below(pool.len() + 1 - min);
        (0..count)
            .map(|_| pool.remove(self.below(pool.len())))
            .collect()
    }
}

/// A merged list patch with `$setElementOrder` (sometimes), element directives and nested
/// changes, built so that the order directive is consistent with the patch list.
fn random_merge_list(
    random: &mut Random,
    existing: &[&str],
    candidates: &[&str],
    key: &str,
    element: &mut dyn FnMut(&mut Random, &str) -> Value,
) -> (Value, Option<Value>) {
    let mut elements: Vec<(String, Value)> = random
        .subset(candidates, 1)
        .into_iter()
        .map(|name| {
            let value = if random.chance(12) {
                json!({key: name, "$patch": "delete"})
            } else {
                element(random, name)
            };
            (name.to_owned(), value)
        })
        .collect();
    let mut order = None;
    if random.chance(45) {
        let mut names: Vec<String> = existing.iter().map(|n| (*n).to_owned()).collect();
        for (name, _) in &elements {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let shuffled: Vec<String> = random
            .subset(&name_refs, name_refs.len())
            .into_iter()
            .map(str::to_owned)
            .collect();
        elements.sort_by_key(|(name, value)| {
            let deleted = value.get("$patch").is_some();
            (deleted, shuffled.iter().position(|n| n == name))
        });
        order = Some(Value::Array(
            shuffled.iter().map(|n| json!({key: n})).collect(),
        ));
    }
    let mut list: Vec<Value> = elements.into_iter().map(|(_, v)| v).collect();
    if random.chance(8) {
        list.push(json!({"$patch": "replace"}));
    }
    (Value::Array(list), order)
}

fn random_pod_patch(random: &mut Random) -> Value {
    let mut patch = json!({"metadata": {}, "spec": {}, "status": {}});
    if random.chance(60) {
        let mut container = |random: &mut Random, name: &str| {
            let mut c = json!({"name": name});
            if random.chance(60) {
                c["image"] = json!(random.pick(&["i1", "i2"]));
            }
            if random.chance(50) {
                let existing: &[&str] = if name == "web" { &["A", "B", "C"] } else { &[] };
                let (env, order) = random_merge_list(
                    random,
                    existing,
                    &["A", "B", "C", "D"],
                    "name",
                    &mut |random, e| json!({"name": e, "value": if random.chance(20) { Value::Null } else { json!(random.pick(&["x", "y"])) }}),
                );
                c["env"] = env;
                if let Some(order) = order {
                    c["$setElementOrder/env"] = order;
                }
            }
            c
        };
        let (containers, order) = random_merge_list(
            random,
            &["web", "sidecar", "logger"],
            &["web", "sidecar", "logger", "new1", "new2"],
            "name",
            &mut container,
        );
        patch["spec"]["containers"] = containers;
        if let Some(order) = order {
            patch["spec"]["$setElementOrder/containers"] = order;
        }
    }
    if random.chance(40) {
        let finalizers = ["a.example.com/one", "b.example.com/two", "c", "d"];
        let added = random.subset(&finalizers, 0);
        // Upstream applies a list and a deletion list for the same field in Go's random map
        // order: only disjoint ones have one answer.
        let others: Vec<&str> = finalizers
            .iter()
            .copied()
            .filter(|f| !added.contains(f))
            .collect();
        patch["metadata"]["finalizers"] = json!(added);
        if random.chance(40) && !others.is_empty() {
            patch["metadata"]["$deleteFromPrimitiveList/finalizers"] =
                json!(random.subset(&others, 1));
        }
    }
    if random.chance(40) {
        let mut labels = json!({});
        for key in random.subset(&["app", "tier", "x"], 1) {
            labels[key] = if random.chance(30) {
                Value::Null
            } else {
                json!(random.pick(&["v1", "v2"]))
            };
        }
        if random.chance(10) {
            labels["$patch"] = json!(random.pick(&["replace", "delete"]));
        }
        patch["metadata"]["labels"] = labels;
    }
    if random.chance(40) {
        let (conditions, order) = random_merge_list(
            random,
            &["PodScheduled", "Initialized", "Ready"],
            &["PodScheduled", "Initialized", "Ready", "ContainersReady"],
            "type",
            &mut |random, t| json!({"type": t, "status": random.pick(&["True", "False"])}),
        );
        patch["status"]["conditions"] = conditions;
        if let Some(order) = order {
            patch["status"]["$setElementOrder/conditions"] = order;
        }
    }
    if random.chance(20) {
        patch["spec"]["tolerations"] =
            json!([{"key": random.pick(&["k1", "k3"]), "operator": "Exists"}]);
    }
    if random.chance(20) {
        patch["spec"]["securityContext"] = match random.below(4) {
            0 => json!({"runAsUser": 7}),
            1 => json!({"$patch": "delete"}),
            2 => json!({"$patch": "replace", "runAsGroup": 1}),
            _ => Value::Null,
        };
    }
    if random.chance(15) {
        patch["spec"]["volumes"] = json!([{"name": random.pick(&["data", "config", "cache"]),
            "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]);
    }
    patch
}

#[test]
fn random_strategic_merge_patches_agree_with_upstream() {
    let pod = pod();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let cases: Vec<Case> = (0..150)
        .map(|i| {
            let patch = random_pod_patch(&mut random);
            case(
                &format!("random case {i}: {patch}"),
                &pod,
                PatchType::StrategicMerge,
                patch,
            )
        })
        .collect();
    run(&cases);
}
