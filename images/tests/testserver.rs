//! The test server's HTTP and TCP endpoints, and its health flipping at runtime (its gRPC
//! health service is exercised by the agent's grpc probes in `probes_e2e`).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET: the status code and the body.
fn get(port: u16, request: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

fn path(port: u16, path: &str) -> (u16, String) {
    get(port, &format!("GET {path} HTTP/1.0\r\n\r\n")).expect("an HTTP answer")
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what} within 10s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serves_http_and_tcp_and_flips_health() {
    let (http, tcp, grpc) = (free_port(), free_port(), free_port());
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_ferrolet-testserver"))
            .args([
                "--http-port",
                &http.to_string(),
                "--grpc-port",
                &grpc.to_string(),
            ])
            .env("TCP_PORT", tcp.to_string())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually("the HTTP port answers", || {
        get(http, "GET /healthz HTTP/1.0\r\n\r\n").is_some()
    });
    assert_eq!(path(http, "/healthz"), (200, "ok".into()));
    assert_eq!(path(http, "/echo?msg=a%20b+c"), (200, "a b c".into()));
    assert_eq!(path(http, "/status?code=503").0, 503);
    let (code, _) = get(
        http,
        "GET /header?name=X-Probe&value=yes HTTP/1.0\r\nX-Probe: yes\r\n\r\n",
    )
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(path(http, "/header?name=X-Probe&value=yes").0, 400);
    let redirect = get(http, "GET /redirect?to=/healthz HTTP/1.0\r\n\r\n");
    assert_eq!(redirect.map(|r| r.0), Some(302));
    eventually("the TCP port accepts", || {
        TcpStream::connect(("127.0.0.1", tcp)).is_ok()
    });

    assert_eq!(path(http, "/set-health?status=fail"), (200, "fail".into()));
    assert_eq!(path(http, "/healthz").0, 500);
    eventually("the TCP port refuses", || {
        TcpStream::connect(("127.0.0.1", tcp)).is_err()
    });
    assert_eq!(path(http, "/set-health?status=bogus").0, 400);
    assert_eq!(path(http, "/set-health?status=ok").0, 200);
    assert_eq!(path(http, "/healthz").0, 200);
    eventually("the TCP port accepts again", || {
        TcpStream::connect(("127.0.0.1", tcp)).is_ok()
    });
    let (_, log) = path(http, "/requests");
    assert!(log.contains("GET /echo?msg=a%20b+c"), "{log}");
    assert!(log.contains("GET /set-health?status=fail"), "{log}");
    assert!(!log.contains("/requests"), "{log}");
}
