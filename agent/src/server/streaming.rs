//! `/exec`, `/attach` and `/portForward`: the runtime prepares the stream (CRI `Exec`,
//! `Attach`, `PortForward` answer with a URL on its streaming server) and the request is
//! proxied there, as the kubelet does for remote runtimes. The upgraded connection (SPDY or
//! WebSocket, whichever the client asked for and the runtime accepts) is then copied both
//! ways byte for byte.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use ferrolet_cri::api;
use http::{HeaderMap, Request, Response, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;

use super::handlers::{HttpError, State, flag, query_params};
use crate::kuberuntime::labels::POD_UID_LABEL;

fn runtime_error(call: &str) -> impl FnOnce(ferrolet_cri::Error) -> HttpError + '_ {
    move |e| HttpError::internal(format!("{call}: {e}"))
}

/// `stdin`/`stdout`/`stderr`/`tty` of a streaming request: the kubelet's names (`input`,
/// `output`, `error`) and the API's (`stdin`, ...), as `1` or `true`.
fn stream_flags(params: &HashMap<String, Vec<String>>) -> (bool, bool, bool, bool) {
    (
        flag(params, &["input", "stdin"]),
        flag(params, &["output", "stdout"]),
        flag(params, &["error", "stderr"]),
        flag(params, &["tty"]),
    )
}

/// `/exec/{ns}/{pod}/{container}?command=...` and `/attach/{ns}/{pod}/{container}`.
pub(super) async fn exec_or_attach(
    state: &Arc<State>,
    request: Request<Body>,
    container_id: &str,
) -> Result<Response<Body>, HttpError> {
    let params = query_params(&request);
    let (stdin, stdout, stderr, tty) = stream_flags(&params);
    if !(stdin || stdout || stderr) {
        return Err(HttpError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let runtime = &state.context.runtime;
    let url = if request.uri().path().starts_with("/exec/") {
        let command = params.get("command").cloned().unwrap_or_default();
        if command.is_empty() {
            return Err(HttpError::bad_request("you must specify a command"));
        }
        runtime
            .exec(api::ExecRequest {
                container_id: container_id.to_owned(),
                cmd: command,
                tty,
                stdin,
                stdout,
                // With a TTY stderr is merged into stdout.
                stderr: stderr && !tty,
            })
            .await
            .map_err(runtime_error("exec"))?
    } else {
        runtime
            .attach(api::AttachRequest {
                container_id: container_id.to_owned(),
                stdin,
                tty,
                stdout,
                stderr: stderr && !tty,
            })
            .await
            .map_err(runtime_error("attach"))?
    };
    proxy(request, &url).await
}

/// `/portForward/{ns}/{pod}`: into the pod's ready sandbox.
pub(super) async fn port_forward(
    state: &Arc<State>,
    request: Request<Body>,
    pod: &Pod,
) -> Result<Response<Body>, HttpError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let filter = api::PodSandboxFilter {
        label_selector: [(POD_UID_LABEL.to_owned(), uid)].into(),
        state: Some(api::PodSandboxStateValue {
            state: api::PodSandboxState::SandboxReady as i32,
        }),
        ..api::PodSandboxFilter::default()
    };
    let runtime = &state.context.runtime;
    let sandbox = runtime
        .list_pod_sandbox(Some(filter))
        .await
        .map_err(runtime_error("list pod sandboxes"))?
        .into_iter()
        .max_by_key(|s| s.created_at)
        .ok_or_else(|| HttpError::not_found("the pod has no running sandbox"))?;
    let params = query_params(&request);
    let ports = params
        .get("port")
        .into_iter()
        .flatten()
        .flat_map(|p| p.split(','))
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<i32>()
                .map_err(|_| HttpError::bad_request(format!("invalid port {p:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let url = runtime
        .port_forward(api::PortForwardRequest {
            pod_sandbox_id: sandbox.id,
            port: ports,
        })
        .await
        .map_err(runtime_error("port forward"))?;
    proxy(request, &url).await
}

/// Headers that belong to one hop; `Connection`/`Upgrade` pass only for an upgrade.
fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, upgrading: bool) {
    for (name, value) in from {
        let hop = matches!(
            name.as_str(),
            "host"
                | "authorization"
                | "proxy-authorization"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "keep-alive"
                | "proxy-connection"
                | "content-length"
        );
        let upgrade_header = name == header::CONNECTION || name == header::UPGRADE;
        if !hop && (!upgrade_header || upgrading) {
            to.append(name.clone(), value.clone());
        }
    }
}

fn bad_gateway(what: impl std::fmt::Display) -> HttpError {
    HttpError {
        status: StatusCode::BAD_GATEWAY,
        message: format!("streaming server: {what}"),
    }
}

/// Sends `request` to the runtime's streaming `url` and passes its answer back; an upgraded
/// connection is spliced to the client's.
async fn proxy(mut request: Request<Body>, url: &str) -> Result<Response<Body>, HttpError> {
    let uri: Uri = url.parse().map_err(bad_gateway)?;
    let authority = uri
        .authority()
        .ok_or_else(|| bad_gateway(format!("URL {url:?} has no host")))?
        .clone();
    if uri.scheme_str() != Some("http") {
        return Err(bad_gateway(format!("URL {url:?}: only http is supported")));
    }
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(authority.as_str()),
    )
    .await
    .map_err(bad_gateway)?
    .map_err(bad_gateway)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(bad_gateway)?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(%err, "streaming server connection ended");
        }
    });
    let upgrading = request.headers().contains_key(header::UPGRADE);
    let target = uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str)
        .to_owned();
    let mut outgoing = Request::builder()
        .method(request.method().clone())
        .uri(target)
        .header(header::HOST, authority.as_str());
    if let Some(headers) = outgoing.headers_mut() {
        copy_headers(request.headers(), headers, upgrading);
    }
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut request));
    let body = if upgrading {
        Body::empty()
    } else {
        std::mem::take(request.body_mut())
    };
    let outgoing = outgoing
        .body(body)
        .map_err(|e| HttpError::internal(format!("build the streaming request: {e}")))?;
    let mut answer = sender.send_request(outgoing).await.map_err(bad_gateway)?;
    let switching = answer.status() == StatusCode::SWITCHING_PROTOCOLS;
    let mut response = Response::builder().status(answer.status());
    if let Some(headers) = response.headers_mut() {
        copy_headers(answer.headers(), headers, switching);
    }
    if switching {
        let runtime_upgrade = hyper::upgrade::on(&mut answer);
        if let Some(client_upgrade) = client_upgrade {
            tokio::spawn(async move {
                match (client_upgrade.await, runtime_upgrade.await) {
                    (Ok(client), Ok(runtime)) => {
                        let (mut client, mut runtime) =
                            (TokioIo::new(client), TokioIo::new(runtime));
                        if let Err(err) =
                            tokio::io::copy_bidirectional(&mut client, &mut runtime).await
                        {
                            tracing::debug!(%err, "stream ended");
                        }
                    }
                    (client, runtime) => tracing::warn!(
                        client_ok = client.is_ok(),
                        runtime_ok = runtime.is_ok(),
                        "stream upgrade failed"
                    ),
                }
            });
        }
        return response
            .body(Body::empty())
            .map_err(|e| HttpError::internal(format!("build the response: {e}")));
    }
    response
        .body(Body::new(answer.into_body()))
        .map_err(|e| HttpError::internal(format!("build the response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_flags_accept_both_spellings() {
        let request = Request::get("/exec/a/b/c?command=ls&input=1&stdout=true&stderr=false&tty=1")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            stream_flags(&query_params(&request)),
            (true, true, false, true)
        );
    }

    #[test]
    fn upgrade_headers_pass_only_when_upgrading() {
        let mut from = HeaderMap::new();
        from.insert(header::UPGRADE, "SPDY/3.1".parse().unwrap());
        from.insert(header::CONNECTION, "Upgrade".parse().unwrap());
        from.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        from.insert(
            "x-stream-protocol-version",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to, true);
        assert!(to.contains_key(header::UPGRADE));
        assert!(!to.contains_key(header::AUTHORIZATION));
        assert!(to.contains_key("x-stream-protocol-version"));
        let mut plain = HeaderMap::new();
        copy_headers(&from, &mut plain, false);
        assert!(!plain.contains_key(header::UPGRADE));
    }
}
