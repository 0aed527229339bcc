//! Routes served by a real Traefik: the test starts Traefik on free loopback ports with the
//! file provider watching a temporary directory, writes routes with `RouteSync` and sends
//! requests through Traefik to small HTTP backends that respond with their own name.

// Helpers outside #[test] functions unwrap too, because a panic there is a test failure.
#![allow(clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use firework_routes::{
    LocalRoute, PeerServices, RemoteNodeRoutes, RemoteService, RouteKeys, RouteSync,
};

/// Upper bound of each wait, because Traefik loads file-provider changes asynchronously.
const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn traefik_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TRAEFIK_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "TRAEFIK_BIN={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/traefik-venv/bin/traefik");
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("traefik"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    firework_testkit::ports::free_port().unwrap()
}

/// A Traefik process, killed on drop.
struct Traefik {
    child: Child,
    log: PathBuf,
}

impl Traefik {
    fn start(binary: &Path, routes_dir: &Path, web_port: u16, api_port: u16, log: PathBuf) -> Self {
        let log_file = File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg(format!(
                "--providers.file.directory={}",
                routes_dir.display()
            ))
            .arg("--providers.file.watch=true")
            // Traefik applies provider events at most every 2 s by default; the test only
            // waits less with a shorter interval, its checks are the same.
            .arg("--providers.providersthrottleduration=100ms")
            .arg(format!("--entrypoints.web.address=127.0.0.1:{web_port}"))
            .arg(format!(
                "--entrypoints.traefik.address=127.0.0.1:{api_port}"
            ))
            .arg("--api.insecure=true")
            .arg("--ping=true")
            .arg("--log.level=INFO")
            .arg("--log.nocolor=true")
            .arg("--global.checknewversion=false")
            .arg("--global.sendanonymoususage=false")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", binary.display()));
        Traefik { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an HTTP server on a free loopback port that responds to every request with `name`.
fn start_backend(name: &'static str) -> u16 {
    let listener = TcpListener::bind((LOOPBACK, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                name.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

/// Sends `GET <path>` with a Host header and returns status and body, or `None` when the
/// connection fails.
fn get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect((LOOPBACK, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Some((status, body.to_string()))
}

/// Polls `host` through Traefik until the response is `expected` or the deadline passes.
fn wait_for(traefik: &Traefik, port: u16, host: &str, expected: (u16, &str)) {
    wait_for_path(traefik, port, host, "/", expected);
}

/// Polls `path` on `host` until the response is `expected` or the deadline passes.
fn wait_for_path(traefik: &Traefik, port: u16, host: &str, path: &str, expected: (u16, &str)) {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < DEADLINE {
        last = get(port, host, path);
        if let Some((status, body)) = &last
            && *status == expected.0
            && (expected.1.is_empty() || body == expected.1)
        {
            return;
        }
        thread::sleep(POLL);
    }
    panic!(
        "{host}{path}: expected {expected:?}, last response {last:?} after {DEADLINE:?}\ntraefik log:\n{}",
        traefik.log()
    );
}

fn local(service: &str, port: u16, host: &str) -> LocalRoute {
    LocalRoute {
        service: service.to_string(),
        guest_ip: Some(LOOPBACK),
        backend_port: Some(port),
        keys: RouteKeys {
            host: Some(host.to_string()),
            subdomain: None,
        },
    }
}

/// Finds Traefik, or prints a skip reason and returns `None`. With `CI=true` a missing
/// Traefik fails the test instead.
fn require_traefik() -> Option<PathBuf> {
    let binary = traefik_binary();
    if binary.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("traefik not found and CI=true; run .ci/setup-traefik.sh");
        }
        eprintln!("skipping: traefik not found (run .ci/setup-traefik.sh or set TRAEFIK_BIN)");
    }
    binary
}

#[test]
fn traefik_follows_route_files() {
    let Some(binary) = require_traefik() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let routes_dir = temp.path().join("dynamic");
    fs::create_dir(&routes_dir).unwrap();
    let backend_a = start_backend("backend-a");
    let backend_b = start_backend("backend-b");
    let backend_c = start_backend("backend-c");
    // The operator's own route in the same directory must keep working throughout.
    fs::write(
        routes_dir.join("operator.yaml"),
        format!(
            "http:\n  routers:\n    operator:\n      rule: \"Host(`op.example.test`)\"\n      entryPoints: [web]\n      service: operator\n  services:\n    operator:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:{backend_a}\"\n"
        ),
    )
    .unwrap();

    let (web_port, api_port) = (free_port(), free_port());
    let traefik = Traefik::start(
        &binary,
        &routes_dir,
        web_port,
        api_port,
        temp.path().join("traefik.log"),
    );
    wait_for_path(&traefik, api_port, "localhost", "/ping", (200, "OK"));
    // Ping responds before the file provider has loaded, so wait for the operator's route.
    wait_for(&traefik, web_port, "op.example.test", (200, "backend-a"));

    let routes = RouteSync::new(&routes_dir, "web", Some("example.test")).unwrap();
    let peer = |port: u16| RemoteNodeRoutes {
        node: "node-2".to_string(),
        host_ip: Some(LOOPBACK),
        services: PeerServices::Listed(vec![RemoteService {
            service: "api".to_string(),
            host_port: Some(port),
            keys: RouteKeys {
                host: None,
                subdomain: Some("api".to_string()),
            },
        }]),
    };

    // Create: a local route and a remote one.
    routes
        .sync(
            &[local("app", backend_a, "app.example.test")],
            &[peer(backend_c)],
        )
        .unwrap();
    wait_for(&traefik, web_port, "app.example.test", (200, "backend-a"));
    wait_for(&traefik, web_port, "api.example.test", (200, "backend-c"));

    // Update: the local service moves to another backend.
    let report = routes
        .sync(
            &[local("app", backend_b, "app.example.test")],
            &[peer(backend_c)],
        )
        .unwrap();
    assert_eq!(report.written, ["firework-local-app.yaml"]);
    wait_for(&traefik, web_port, "app.example.test", (200, "backend-b"));

    // Delete: no routes are left, so Traefik returns 404 for both hosts.
    let report = routes.sync(&[], &[]).unwrap();
    assert_eq!(
        report.deleted,
        ["firework-local-app.yaml", "firework-remote-node-2_api.yaml"]
    );
    wait_for(&traefik, web_port, "app.example.test", (404, ""));
    wait_for(&traefik, web_port, "api.example.test", (404, ""));

    assert!(routes_dir.join("operator.yaml").exists());
    wait_for(&traefik, web_port, "op.example.test", (200, "backend-a"));
    let log = traefik.log();
    assert!(
        !log.contains(".tmp"),
        "traefik read a temporary file:\n{log}"
    );
    assert!(!log.contains(" ERR "), "traefik logged an error:\n{log}");
}

/// One service with a bad config does not stop the others' routes: a new service is
/// served, the broken service keeps its earlier route, and a broken service without an
/// earlier route gets none.
#[test]
fn traefik_serves_good_routes_beside_skipped() {
    let Some(binary) = require_traefik() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let routes_dir = temp.path().join("dynamic");
    fs::create_dir(&routes_dir).unwrap();
    let backend_a = start_backend("backend-a");
    let backend_b = start_backend("backend-b");
    let backend_c = start_backend("backend-c");
    let (web_port, api_port) = (free_port(), free_port());
    let traefik = Traefik::start(
        &binary,
        &routes_dir,
        web_port,
        api_port,
        temp.path().join("traefik.log"),
    );
    wait_for_path(&traefik, api_port, "localhost", "/ping", (200, "OK"));
    let routes = RouteSync::new(&routes_dir, "web", Some("example.test")).unwrap();

    routes
        .sync(
            &[
                local("app", backend_a, "app.example.test"),
                local("shop", backend_b, "shop.example.test"),
            ],
            &[],
        )
        .unwrap();
    wait_for(&traefik, web_port, "app.example.test", (200, "backend-a"));
    wait_for(&traefik, web_port, "shop.example.test", (200, "backend-b"));
    let shop_file = routes_dir.join("firework-local-shop.yaml");
    let shop_before = fs::read(&shop_file).unwrap();

    // shop loses its backend port, extra never had a guest IP, and fresh is new.
    let mut shop = local("shop", backend_b, "shop.example.test");
    shop.backend_port = None;
    let mut extra = local("extra", backend_c, "extra.example.test");
    extra.guest_ip = None;
    let report = routes
        .sync(
            &[
                local("app", backend_a, "app.example.test"),
                shop,
                extra,
                local("fresh", backend_c, "fresh.example.test"),
            ],
            &[],
        )
        .unwrap();

    let skipped: Vec<(&str, Option<&str>)> = report
        .skipped_local
        .iter()
        .map(|skip| (skip.service.as_str(), skip.kept_file.as_deref()))
        .collect();
    assert_eq!(
        skipped,
        [("extra", None), ("shop", Some("firework-local-shop.yaml"))]
    );
    assert_eq!(report.written, ["firework-local-fresh.yaml"]);
    assert_eq!(fs::read(&shop_file).unwrap(), shop_before);
    wait_for(&traefik, web_port, "fresh.example.test", (200, "backend-c"));
    wait_for(&traefik, web_port, "app.example.test", (200, "backend-a"));
    wait_for(&traefik, web_port, "shop.example.test", (200, "backend-b"));
    wait_for(&traefik, web_port, "extra.example.test", (404, ""));
    let log = traefik.log();
    assert!(!log.contains(" ERR "), "traefik logged an error:\n{log}");
}
