//! What tests read from the runtime's side: containerd's verbose sandbox status and CRI log
//! files.

use std::collections::HashMap;

/// What containerd's verbose `PodSandboxStatus` says about the sandbox on the host.
#[derive(Debug)]
pub struct SandboxFootprint {
    pub pid: u32,
    pub netns_path: String,
    pub host_veth: String,
}

/// Reads the footprint from the `info` of a verbose `PodSandboxStatus`.
#[must_use]
pub fn footprint<S: std::hash::BuildHasher>(info: &HashMap<String, String, S>) -> SandboxFootprint {
    let info: serde_json::Value =
        serde_json::from_str(info.get("info").expect("verbose info")).expect("info is JSON");
    let pid = u32::try_from(info["pid"].as_u64().expect("sandbox pid")).expect("pid fits u32");
    let netns_path = info["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .find(|ns| ns["type"] == "network")
        .and_then(|ns| ns["path"].as_str())
        .expect("network namespace path")
        .to_owned();
    let host_veth = info["cniResult"]["Interfaces"]
        .as_object()
        .expect("CNI interfaces")
        .keys()
        .find(|name| name.starts_with("veth"))
        .expect("host side veth")
        .clone();
    SandboxFootprint {
        pid,
        netns_path,
        host_veth,
    }
}

/// One line of a CRI container log: `<RFC3339Nano> <stdout|stderr> <F|P> <content>`.
#[derive(Debug, PartialEq, Eq)]
pub struct LogLine {
    pub stream: String,
    pub tag: String,
    pub content: String,
}

/// Parses a CRI log file, failing on any line not in the format.
#[must_use]
pub fn parse_cri_log(text: &str) -> Vec<LogLine> {
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let time = parts.next().expect("timestamp");
            // 2026-11-21T21:40:00.123456789Z or with a numeric offset.
            assert!(
                time.len() >= 20 && time.as_bytes()[10] == b'T' && time.contains('.'),
                "not an RFC3339Nano time: {line:?}"
            );
            let stream = parts.next().expect("stream").to_owned();
            assert!(stream == "stdout" || stream == "stderr", "{line:?}");
            let tag = parts.next().expect("tag").to_owned();
            assert!(tag == "F" || tag == "P", "{line:?}");
            LogLine {
                stream,
                tag,
                content: parts.next().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}
