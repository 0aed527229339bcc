//! Git token authentication over HTTPS against a loopback TLS server.
//!
//! The Git client trusts the system certificates, which `SSL_CERT_FILE` replaces. A test
//! cannot set that variable for its own process safely, so the outer test creates a test CA
//! and a server certificate and runs the inner test in a child process with the variable set.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use firework_store::{
    Backoff, ConfigStore, GITHUB_TOKEN, GitSettings, GitStore, StoreErrorKind, error_chain,
    token_for_url,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The folder that contains `cert.pem` and `key.pem`, set only in the child process.
const TLS_DIR_ENV: &str = "FIREWORK_STORE_TEST_TLS_DIR";
const TOKEN: &str = "ghp-test-token-0123";

#[test]
fn git_https_token_sent_to_host() {
    if std::env::var_os(TLS_DIR_ENV).is_some() {
        // Inside the child process only the inner test has work to do.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    if let Err(reason) = make_certificates(dir.path()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "failed to create test certificates: {reason}"
        );
        eprintln!("skipping: failed to create test certificates: {reason}");
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "https_token_inner", "--ignored", "--nocapture"])
        .env("SSL_CERT_FILE", dir.path().join("ca.pem"))
        .env(TLS_DIR_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "inner test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "inner test did not run:\n{stdout}"
    );
}

/// Creates a test CA (`ca.pem`) and a server certificate for 127.0.0.1 signed by it
/// (`cert.pem`, `key.pem`) with the `openssl` command, because the client rejects a
/// self-signed certificate used directly by a server.
fn make_certificates(dir: &Path) -> Result<(), String> {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=firework-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ],
    ];
    for args in steps {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("failed to run openssl: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    Ok(())
}

/// Starts a TLS server that responds 401 with a Basic challenge to requests without an
/// `Authorization` header and 403 to the rest, recording every `Authorization` value.
async fn start_tls_server(dir: &Path) -> (u16, Arc<Mutex<Vec<String>>>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut stream = BufReader::new(tls);
            let mut authorization = None;
            loop {
                let mut line = String::new();
                if stream.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line
                    .strip_prefix("Authorization: ")
                    .or_else(|| line.strip_prefix("authorization: "))
                {
                    authorization = Some(value.trim().to_owned());
                }
            }
            let response = match authorization {
                Some(value) => {
                    recorded.lock().unwrap().push(value);
                    "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                }
                None => {
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                }
            };
            let _ = stream.get_mut().write_all(response.as_bytes()).await;
            let _ = stream.get_mut().shutdown().await;
        }
    });
    (port, seen)
}

#[tokio::test]
#[ignore = "run by git_https_token_sent_to_host in a child process with SSL_CERT_FILE set"]
async fn https_token_inner() {
    let dir = std::env::var_os(TLS_DIR_ENV).expect("run through git_https_token_sent_to_host");
    let (port, seen) = start_tls_server(Path::new(&dir)).await;
    let url = format!("https://127.0.0.1:{port}/config.git");
    let state = tempfile::tempdir().unwrap();
    let mut settings = GitSettings::new(&url, "main", state.path());
    settings.github_host = "127.0.0.1".to_owned();
    settings.token = token_for_url(&url, &settings.github_host, |key| {
        (key == GITHUB_TOKEN).then(|| TOKEN.to_owned())
    });
    settings.backoff = Backoff {
        attempts: 1,
        initial: Duration::from_millis(10),
        max: Duration::from_millis(10),
    };
    let store = GitStore::new(settings).unwrap();
    let error = store.fetch(&["a".to_owned()]).await.remove(0).unwrap_err();

    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"))
    );
    assert_eq!(
        seen.lock().unwrap().first(),
        Some(&expected),
        "{}",
        error_chain(&error)
    );
    assert_eq!(
        error.kind,
        StoreErrorKind::Denied,
        "{}",
        error_chain(&error)
    );
    assert!(!error_chain(&error).contains(TOKEN));
    assert!(!format!("{error:?}").contains(TOKEN));
}
