//! `ferrolet-testserver`: the program of the `ferrolet/test-server` image, what the Kubernetes
//! e2e tests use agnhost for. It serves probes and hooks something to talk to:
//!
//! - HTTP (`--http-port`, default 8080): `/healthz` (200 while healthy, else 500), `/echo`
//!   (`?msg=` or the request itself), `/redirect?to=URL` (302), `/status?code=N`,
//!   `/header?name=N&value=V` (200 if the request carries that header), `/set-health?status=`
//!   (`ok`/`fail`, optionally `&service=` for one gRPC service), `/requests` (every request
//!   received so far, one `METHOD /path?query` per line) and `/exit?code=N`.
//! - TCP (`--tcp-port`, default 7070): accepts and closes connections while healthy; the
//!   listener is closed while unhealthy, so connects are refused.
//! - gRPC (`--grpc-port`, default 9090): `grpc.health.v1.Health/Check` over h2c; the service
//!   `""` follows the health, named services are those set through `/set-health` or
//!   `--grpc-service`; others answer `NOT_FOUND`.
//!
//! Ports come from the flags or `HTTP_PORT`, `TCP_PORT`, `GRPC_PORT`; 0 disables one.
//! `--unhealthy` starts unhealthy, `--healthy-after SECONDS` keeps `/healthz` failing that
//! long after the start. The gRPC framing and the two health messages are encoded here by
//! hand, which keeps the static binary small (no protobuf or gRPC library).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// `grpc.health.v1.HealthCheckResponse.ServingStatus` values.
const SERVING: u64 = 1;
const NOT_SERVING: u64 = 2;

#[derive(Debug)]
struct Options {
    http_port: u16,
    tcp_port: u16,
    grpc_port: u16,
    healthy: bool,
    healthy_after: Duration,
    grpc_services: Vec<String>,
}

fn usage(message: &str) -> ! {
    eprintln!(
        "ferrolet-testserver: {message}\nusage: ferrolet-testserver [--http-port N] [--tcp-port N] \
         [--grpc-port N] [--grpc-service NAME]... [--unhealthy] [--healthy-after SECONDS]"
    );
    std::process::exit(2);
}

fn port_from_env(name: &str, default: u16) -> u16 {
    std::env::var(name).ok().map_or(default, |v| {
        v.parse().unwrap_or_else(|_| usage(&format!("{name}={v}")))
    })
}

fn options() -> Options {
    let mut options = Options {
        http_port: port_from_env("HTTP_PORT", 8080),
        tcp_port: port_from_env("TCP_PORT", 7070),
        grpc_port: port_from_env("GRPC_PORT", 9090),
        healthy: true,
        healthy_after: Duration::ZERO,
        grpc_services: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        if flag == "--unhealthy" {
            options.healthy = false;
            continue;
        }
        let value = inline
            .or_else(|| args.next())
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = || -> u64 {
            value
                .parse()
                .unwrap_or_else(|_| usage(&format!("{flag} {value}")))
        };
        let port = || u16::try_from(number()).unwrap_or_else(|_| usage(&format!("{flag} {value}")));
        match flag.as_str() {
            "--http-port" => options.http_port = port(),
            "--tcp-port" => options.tcp_port = port(),
            "--grpc-port" => options.grpc_port = port(),
            "--healthy-after" => options.healthy_after = Duration::from_secs(number()),
            "--grpc-service" => options.grpc_services.push(value),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    options
}

/// What the endpoints share.
#[derive(Debug)]
struct Server {
    healthy: watch::Sender<bool>,
    started: Instant,
    healthy_after: Duration,
    /// Named gRPC services and whether they serve.
    services: Mutex<HashMap<String, bool>>,
    requests: Mutex<Vec<String>>,
}

impl Server {
    fn healthy(&self) -> bool {
        *self.healthy.borrow() && self.started.elapsed() >= self.healthy_after
    }

    /// The gRPC serving status of `service`, `None` if unknown.
    fn grpc_status(&self, service: &str) -> Option<bool> {
        if service.is_empty() {
            return Some(*self.healthy.borrow());
        }
        self.services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(service)
            .copied()
    }
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| usage(&format!("start the runtime: {e}")));
    let server = Arc::new(Server {
        healthy: watch::Sender::new(options.healthy),
        started: Instant::now(),
        healthy_after: options.healthy_after,
        services: Mutex::new(
            options
                .grpc_services
                .iter()
                .map(|s| (s.clone(), true))
                .collect(),
        ),
        requests: Mutex::new(Vec::new()),
    });
    runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        if options.http_port != 0 {
            let listener = bind(options.http_port).await;
            tasks.spawn(serve_http(listener, server.clone()));
        }
        if options.grpc_port != 0 {
            let listener = bind(options.grpc_port).await;
            tasks.spawn(serve_grpc(listener, server.clone()));
        }
        if options.tcp_port != 0 {
            tasks.spawn(serve_tcp(options.tcp_port, server.clone()));
        }
        println!(
            "ferrolet-testserver: http {} tcp {} grpc {}",
            options.http_port, options.tcp_port, options.grpc_port
        );
        while tasks.join_next().await.is_some() {}
    });
}

async fn bind(port: u16) -> TcpListener {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
        .await
        .unwrap_or_else(|e| usage(&format!("listen on port {port}: {e}")))
}

async fn serve_http(listener: TcpListener, server: Arc<Server>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(http_endpoint(&server, &request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn query(request: &Request<Incoming>) -> BTreeMap<String, String> {
    request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn http_endpoint(server: &Server, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let line = format!(
        "{} {}",
        request.method(),
        request
            .uri()
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
    );
    let q = query(request);
    if request.uri().path() != "/requests" {
        println!("{line}");
        server
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line.clone());
    }
    match request.uri().path() {
        "/healthz" if server.healthy() => reply(StatusCode::OK, "ok"),
        "/healthz" => reply(StatusCode::INTERNAL_SERVER_ERROR, "unhealthy"),
        "/echo" => {
            if let Some(msg) = q.get("msg") {
                return reply(StatusCode::OK, msg.clone());
            }
            let mut text = format!("{line}\n");
            for (name, value) in request.headers() {
                let _ = writeln!(
                    text,
                    "{name}: {}",
                    String::from_utf8_lossy(value.as_bytes())
                );
            }
            reply(StatusCode::OK, text)
        }
        "/redirect" => {
            let mut response = reply(StatusCode::FOUND, "");
            if let Some(Ok(to)) = q.get("to").map(|t| HeaderValue::from_str(t)) {
                response.headers_mut().insert(http::header::LOCATION, to);
            }
            response
        }
        "/status" => {
            let code = q
                .get("code")
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            reply(code, code.as_str().to_owned())
        }
        "/header" => {
            let name = q.get("name").map(String::as_str).unwrap_or_default();
            let wanted = q.get("value").map(String::as_str).unwrap_or_default();
            match request.headers().get(name).map(HeaderValue::as_bytes) {
                Some(value) if value == wanted.as_bytes() => reply(StatusCode::OK, "ok"),
                _ => reply(
                    StatusCode::BAD_REQUEST,
                    format!("no header {name}: {wanted}"),
                ),
            }
        }
        "/set-health" => set_health(server, &q),
        "/requests" => {
            let log = server
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .join("\n");
            reply(StatusCode::OK, log)
        }
        "/exit" => {
            let code = q.get("code").and_then(|c| c.parse().ok()).unwrap_or(0);
            // After the answer has gone out.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                std::process::exit(code);
            });
            reply(StatusCode::OK, "bye")
        }
        _ => reply(StatusCode::NOT_FOUND, "not found"),
    }
}

fn set_health(server: &Server, q: &BTreeMap<String, String>) -> Response<Full<Bytes>> {
    let healthy = match q.get("status").map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("ok" | "serving" | "true") => true,
        Some("fail" | "not_serving" | "false") => false,
        _ => return reply(StatusCode::BAD_REQUEST, "status must be ok or fail"),
    };
    match q.get("service").filter(|s| !s.is_empty()) {
        Some(service) => {
            server
                .services
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(service.clone(), healthy);
        }
        None => {
            server.healthy.send_replace(healthy);
        }
    }
    reply(StatusCode::OK, if healthy { "ok" } else { "fail" })
}

/// Listens while healthy: connects succeed then, and are refused while unhealthy.
async fn serve_tcp(port: u16, server: Arc<Server>) {
    let mut health = server.healthy.subscribe();
    loop {
        if !*health.borrow_and_update() {
            if health.changed().await.is_err() {
                return;
            }
            continue;
        }
        let listener = bind(port).await;
        loop {
            tokio::select! {
                accepted = listener.accept() => drop(accepted),
                changed = health.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*health.borrow() {
                        break;
                    }
                }
            }
        }
    }
}

async fn serve_grpc(listener: TcpListener, server: Arc<Server>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(grpc_call(&server, request).await) }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type GrpcBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A gRPC answer: the message (if any) framed, then `grpc-status` in the trailers.
fn grpc_reply(message: Option<Vec<u8>>, code: u32, text: &str) -> Response<GrpcBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(value) = HeaderValue::from_str(text)
        && !text.is_empty()
    {
        trailers.insert("grpc-message", value);
    }
    let data = message.map(|m| {
        let mut framed = vec![0u8];
        framed.extend_from_slice(&u32::try_from(m.len()).unwrap_or(0).to_be_bytes());
        framed.extend_from_slice(&m);
        Bytes::from(framed)
    });
    let body = Full::new(data.unwrap_or_default())
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed();
    let mut response = Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

async fn grpc_call(server: &Server, request: Request<Incoming>) -> Response<GrpcBody> {
    const UNIMPLEMENTED: u32 = 12;
    const NOT_FOUND: u32 = 5;
    const INVALID_ARGUMENT: u32 = 3;
    if request.uri().path() != "/grpc.health.v1.Health/Check" {
        return grpc_reply(None, UNIMPLEMENTED, "only grpc.health.v1.Health/Check");
    }
    let Ok(body) = request.into_body().collect().await else {
        return grpc_reply(None, INVALID_ARGUMENT, "read the request");
    };
    let body = body.to_bytes();
    let Some(service) = body.get(5..).and_then(decode_service) else {
        return grpc_reply(None, INVALID_ARGUMENT, "malformed HealthCheckRequest");
    };
    println!("grpc Check service={service:?}");
    match server.grpc_status(&service) {
        Some(serving) => {
            let status = if serving { SERVING } else { NOT_SERVING };
            // HealthCheckResponse { status = 1 (varint) }
            grpc_reply(Some(vec![0x08, u8::try_from(status).unwrap_or(0)]), 0, "")
        }
        None => grpc_reply(None, NOT_FOUND, "unknown service"),
    }
}

/// The `service` field (1, a string) of a `HealthCheckRequest`; unknown fields are skipped.
fn decode_service(mut message: &[u8]) -> Option<String> {
    let mut service = String::new();
    while !message.is_empty() {
        let (key, rest) = varint(message)?;
        message = rest;
        match key & 7 {
            0 => message = varint(message)?.1,
            1 => message = message.get(8..)?,
            5 => message = message.get(4..)?,
            2 => {
                let (len, rest) = varint(message)?;
                let len = usize::try_from(len).ok()?;
                let value = rest.get(..len)?;
                if key >> 3 == 1 {
                    service = String::from_utf8(value.to_vec()).ok()?;
                }
                message = &rest[len..];
            }
            _ => return None,
        }
    }
    Some(service)
}

fn varint(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_requests_decode() {
        assert_eq!(decode_service(&[]), Some(String::new()));
        // service = "ab", then an unknown varint field 2.
        assert_eq!(
            decode_service(&[0x0a, 2, b'a', b'b', 0x10, 0x96, 0x01]),
            Some("ab".into())
        );
        assert_eq!(decode_service(&[0x0a, 5, b'a']), None, "truncated");
    }

    #[test]
    fn queries_decode() {
        assert_eq!(percent_decode("a%20b+c%2F%zz"), "a b c/%zz");
    }
}
