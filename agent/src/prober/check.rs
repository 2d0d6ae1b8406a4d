//! Running one probe: exec through CRI `ExecSync`, httpGet, tcpSocket, and grpc
//! (`grpc.health.v1.Health/Check`), with upstream's outcomes and messages.

use std::time::Duration;

use ferrolet_cri::RuntimeService;
use ferrolet_proto::health::v1::health_check_response::ServingStatus;
use ferrolet_proto::health::v1::{HealthCheckRequest, health_client::HealthClient};
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

use super::http::{self, Target, io_cause};

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A success with a remark (a redirect to another host was not followed).
    Warning(String),
    /// A failure, with the output or cause upstream shows after `probe failed: `.
    Failure(String),
    /// The probe could not be run (a named port that does not exist, a runtime error); it
    /// counts for nothing.
    Error(String),
}

/// What a probe runs against.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    pub runtime: &'a dyn RuntimeService,
    pub container: &'a Container,
    pub container_id: &'a str,
    pub pod_ip: Option<&'a str>,
}

impl std::fmt::Debug for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject")
            .field("container", &self.container.name)
            .field("container_id", &self.container_id)
            .finish_non_exhaustive()
    }
}

/// Runs `probe` once within `timeout`.
pub async fn run(probe: &Probe, subject: Subject<'_>, timeout: Duration) -> Outcome {
    if let Some(exec) = &probe.exec {
        return exec_probe(
            subject,
            exec.command.as_deref().unwrap_or_default(),
            timeout,
        )
        .await;
    }
    if let Some(action) = &probe.http_get {
        return match http_target(action, subject.container, subject.pod_ip) {
            Ok((target, headers)) => http_probe(&target, &headers, timeout).await,
            Err(err) => Outcome::Error(err),
        };
    }
    if let Some(action) = &probe.tcp_socket {
        return match tcp_target(action, subject.container, subject.pod_ip) {
            Ok((host, port)) => tcp_probe(&host, port, timeout).await,
            Err(err) => Outcome::Error(err),
        };
    }
    if let Some(action) = &probe.grpc {
        let Some(ip) = subject.pod_ip else {
            return Outcome::Error("the pod has no IP".into());
        };
        let Ok(port) = u16::try_from(action.port) else {
            return Outcome::Error(format!("invalid port {}", action.port));
        };
        return grpc_probe(
            ip,
            port,
            action.service.as_deref().unwrap_or_default(),
            timeout,
        )
        .await;
    }
    Outcome::Error("missing probe handler".into())
}

/// A port by number or by the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// The GET an httpGet action makes, and its headers.
pub fn http_target(
    action: &HTTPGetAction,
    container: &Container,
    pod_ip: Option<&str>,
) -> Result<(Target, Vec<(String, String)>), String> {
    let port = resolve_port(&action.port, container)?;
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(host) => host.to_owned(),
        None => pod_ip.ok_or("the pod has no IP")?.to_owned(),
    };
    let path = action.path.clone().unwrap_or_default();
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let https = action
        .scheme
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let headers = action
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    Ok((
        Target {
            https,
            host,
            port,
            path,
        },
        headers,
    ))
}

fn tcp_target(
    action: &TCPSocketAction,
    container: &Container,
    pod_ip: Option<&str>,
) -> Result<(String, u16), String> {
    let port = resolve_port(&action.port, container)?;
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(host) => host.to_owned(),
        None => pod_ip.ok_or("the pod has no IP")?.to_owned(),
    };
    Ok((host, port))
}

async fn exec_probe(subject: Subject<'_>, command: &[String], timeout: Duration) -> Outcome {
    match subject
        .runtime
        .exec_sync(subject.container_id, command, timeout)
        .await
    {
        Ok(response) => {
            let mut output = String::from_utf8_lossy(&response.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&response.stderr));
            if response.exit_code == 0 {
                Outcome::Success
            } else {
                Outcome::Failure(output)
            }
        }
        Err(err) if is_timeout(&err) => {
            Outcome::Failure(format!("command {:?} timed out", command.join(" ")))
        }
        Err(err) => Outcome::Error(err.to_string()),
    }
}

fn is_timeout(err: &ferrolet_cri::Error) -> bool {
    use std::error::Error as _;
    if matches!(err, ferrolet_cri::Error::DeadlineExceeded { .. }) {
        return true;
    }
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.contains("DeadlineExceeded")
        || text.contains("timeout")
        || text.contains("deadline exceeded")
}

/// 2xx and 3xx succeed; a redirect to another host succeeds with a warning.
pub async fn http_probe(
    target: &Target,
    headers: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    match http::get(target, headers, timeout).await {
        Ok(response) if (200..400).contains(&response.status) => {
            if response.redirect_to_other_host {
                Outcome::Warning(format!(
                    "Probe terminated redirects, Response body: {}",
                    response.body
                ))
            } else {
                Outcome::Success
            }
        }
        Ok(response) => Outcome::Failure(format!(
            "HTTP probe failed with statuscode: {}",
            response.status
        )),
        Err(err) => Outcome::Failure(err),
    }
}

async fn tcp_probe(host: &str, port: u16, timeout: Duration) -> Outcome {
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::time::timeout(timeout, TcpStream::connect(&address)).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {address}: connect: {}", io_cause(&e))),
        Err(_) => Outcome::Failure(format!("dial tcp {address}: i/o timeout")),
    }
}

async fn grpc_probe(ip: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let address = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{address}")) {
        Ok(endpoint) => endpoint.connect_timeout(timeout).timeout(timeout),
        Err(err) => return Outcome::Error(err.to_string()),
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(err)) => {
            return Outcome::Failure(format!(
                "timeout: failed to connect service {address:?} within {}s: {err}",
                timeout.as_secs()
            ));
        }
        Err(_) => {
            return Outcome::Failure(format!(
                "timeout: failed to connect service {address:?} within {}s",
                timeout.as_secs()
            ));
        }
    };
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let mut client = HealthClient::new(channel);
    match tokio::time::timeout(timeout, client.check(request)).await {
        Ok(Ok(response)) => {
            let status = response.into_inner().status;
            if status == ServingStatus::Serving as i32 {
                Outcome::Success
            } else {
                let name = ServingStatus::try_from(status).map_or("UNKNOWN", |s| s.as_str_name());
                Outcome::Failure(format!("service unhealthy (responded with {name:?})"))
            }
        }
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
            Outcome::Failure(format!(
                "this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            ))
        }
        Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => {
            Outcome::Failure(format!(
                "timeout: health rpc did not complete within {}s",
                timeout.as_secs()
            ))
        }
        Ok(Err(status)) => Outcome::Failure(format!(
            "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
            status.code(),
            status.message()
        )),
        Err(_) => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ContainerPort;

    use super::*;

    #[test]
    fn named_and_numbered_ports() {
        let container = Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..ContainerPort::default()
            }]),
            ..Container::default()
        };
        assert_eq!(resolve_port(&IntOrString::Int(81), &container), Ok(81));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &container),
            Ok(8080)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("90".into()), &container),
            Ok(90)
        );
        assert!(resolve_port(&IntOrString::String("grpc".into()), &container).is_err());
        assert!(resolve_port(&IntOrString::Int(0), &container).is_err());
    }

    #[test]
    fn http_targets_default_to_the_pod_ip() {
        let action = HTTPGetAction {
            path: Some("healthz".into()),
            port: IntOrString::Int(8080),
            ..HTTPGetAction::default()
        };
        let (target, _) = http_target(&action, &Container::default(), Some("10.1.2.3")).unwrap();
        assert_eq!(target.url(), "http://10.1.2.3:8080/healthz");
        assert!(http_target(&action, &Container::default(), None).is_err());
    }

    /// A server answering each request with the response `answer` gives for its path.
    async fn canned(answer: fn(&str, u16) -> String) -> u16 {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let _ = stream.write_all(answer(&path, port).as_bytes()).await;
            }
        });
        port
    }

    fn answer(path: &str, port: u16) -> String {
        let (status, location) = match path {
            "/same" => ("302 Found", format!("http://127.0.0.1:{port}/fails")),
            "/dir/relative" => ("301 Moved Permanently", "ok".to_owned()),
            "/other" => ("302 Found", "http://192.0.2.1/x".to_owned()),
            "/fails" => ("500 Internal Server Error", String::new()),
            _ => ("200 OK", String::new()),
        };
        let location = if location.is_empty() {
            String::new()
        } else {
            format!("Location: {location}\r\n")
        };
        format!("HTTP/1.1 {status}\r\n{location}Content-Length: 4\r\nConnection: close\r\n\r\nbody")
    }

    #[tokio::test]
    async fn http_probes_follow_redirects_on_the_same_host_only() {
        let port = canned(answer).await;
        let target = |path: &str| Target {
            https: false,
            host: "127.0.0.1".into(),
            port,
            path: path.into(),
        };
        let timeout = Duration::from_secs(2);
        assert_eq!(
            http_probe(&target("/ok"), &[], timeout).await,
            Outcome::Success
        );
        assert_eq!(
            http_probe(&target("/same"), &[], timeout).await,
            Outcome::Failure("HTTP probe failed with statuscode: 500".into()),
            "followed to /fails"
        );
        assert_eq!(
            http_probe(&target("/dir/relative"), &[], timeout).await,
            Outcome::Success,
            "followed to /dir/ok"
        );
        assert_eq!(
            http_probe(&target("/other"), &[], timeout).await,
            Outcome::Warning("Probe terminated redirects, Response body: body".into())
        );
    }

    #[tokio::test]
    async fn refused_connections_fail_like_the_kubelet_says() {
        // A port nobody listens on: bind one and drop it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(
            tcp_probe("127.0.0.1", port, Duration::from_secs(1)).await,
            Outcome::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
        let target = Target {
            https: false,
            host: "127.0.0.1".into(),
            port,
            path: "/healthz".into(),
        };
        assert_eq!(
            http_probe(&target, &[], Duration::from_secs(1)).await,
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }
}
