//! The Git store against a real `git daemon` serving a bare repository.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use std::time::Duration;

use firework_store::{
    Backend, Backoff, ConfigStore, DesiredStateCache, GitSettings, GitStore, PlacementIndex,
    Secret, StoreErrorKind, Subject, error_chain,
};
use support::{GitServer, node_yaml};

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn settings(url: &str, state: &std::path::Path) -> GitSettings {
    let mut settings = GitSettings::new(url, "main", state);
    settings.backoff = Backoff {
        attempts: 2,
        initial: Duration::from_millis(10),
        max: Duration::from_millis(20),
    };
    settings.fetch_timeout = Duration::from_secs(30);
    settings.reuse_window = Duration::ZERO;
    settings
}

#[tokio::test]
async fn git_reads_all_labels_from_one_fetch() {
    let server = GitServer::start();
    let head = server.commit(&[
        ("nodes/a.yaml", Some(&node_yaml("a", "web"))),
        ("nodes/b.yaml", Some(&node_yaml("b", "api"))),
    ]);
    let state = tempfile::tempdir().unwrap();
    let store = GitStore::new(settings(&server.url(), state.path())).unwrap();

    let results = store.fetch(&labels(&["a", "b"])).await;
    let a = results[0].as_ref().unwrap();
    let b = results[1].as_ref().unwrap();
    assert_eq!(a.revision.as_str(), head);
    assert_eq!(b.revision.as_str(), head);
    assert_eq!(a.config.services[0].name, "web");
    assert_eq!(b.config.services[0].name, "api");
    assert_eq!(store.fetch_count(), 1);
    assert!(state.path().join("config-repo").is_dir());
    assert!(
        state.path().join("config-repo/shallow").exists(),
        "the clone should be shallow"
    );
}

#[tokio::test]
async fn git_new_commit_fetched_without_reclone() {
    let server = GitServer::start();
    server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "web")))]);
    let state = tempfile::tempdir().unwrap();
    let store = GitStore::new(settings(&server.url(), state.path())).unwrap();
    let wanted = labels(&["a"]);
    let first = store.fetch(&wanted).await.remove(0).unwrap();

    // A file only this test writes into the clone survives only if the clone is reused.
    let marker = state.path().join("config-repo/firework-test-marker");
    std::fs::write(&marker, "kept").unwrap();

    let second_head = server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "db")))]);
    let second = store.fetch(&wanted).await.remove(0).unwrap();
    assert_ne!(second.revision, first.revision);
    assert_eq!(second.revision.as_str(), second_head);
    assert_eq!(second.config.services[0].name, "db");
    assert!(
        marker.exists(),
        "the clone was replaced instead of fetched into"
    );

    let unchanged = store.fetch(&wanted).await.remove(0).unwrap();
    assert_eq!(unchanged.revision, second.revision);
}

#[tokio::test]
async fn git_follows_force_push() {
    let server = GitServer::start();
    server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "web")))]);
    let pushed = server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "api")))]);
    let state = tempfile::tempdir().unwrap();
    let store = GitStore::new(settings(&server.url(), state.path())).unwrap();
    let wanted = labels(&["a"]);
    let before = store.fetch(&wanted).await.remove(0).unwrap();
    assert_eq!(before.revision.as_str(), pushed);

    let rewritten = server.force_push_rewrite(&[("nodes/a.yaml", Some(&node_yaml("a", "cache")))]);
    assert_ne!(rewritten, pushed);
    let after = store.fetch(&wanted).await.remove(0).unwrap();
    assert_eq!(after.revision.as_str(), rewritten);
    assert_eq!(after.config.services[0].name, "cache");
}

#[tokio::test]
async fn git_deleted_branch_keeps_last_good() {
    let server = GitServer::start();
    server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "web")))]);
    let state = tempfile::tempdir().unwrap();
    let store = GitStore::new(settings(&server.url(), state.path())).unwrap();
    let wanted = labels(&["a"]);
    let mut cache = DesiredStateCache::new(Backend::Git);
    let good = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap()
        .clone();

    server.delete_branch();
    let results = store.fetch(&wanted).await;
    let error = results[0].as_ref().unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::NotFound);
    assert_eq!(error.backend, Backend::Git);
    assert_eq!(error.subject, Subject::Label("a".to_owned()));
    assert!(
        error_chain(error).contains("branch `main` does not exist on the remote"),
        "{}",
        error_chain(error)
    );
    let stale = cache.apply_fetch(&wanted, results).unwrap_err();
    assert_eq!(stale.last_good, Some(&good));
}

#[tokio::test]
async fn git_server_down_is_unreachable() {
    let mut server = GitServer::start();
    server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "web")))]);
    let state = tempfile::tempdir().unwrap();
    let store = GitStore::new(settings(&server.url(), state.path())).unwrap();
    let wanted = labels(&["a"]);
    let mut cache = DesiredStateCache::new(Backend::Git);
    let good = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap()
        .clone();
    assert_eq!(store.fetch_count(), 1);

    server.stop();
    let results = store.fetch(&wanted).await;
    let error = results[0].as_ref().unwrap_err();
    assert_eq!(
        error.kind,
        StoreErrorKind::Unreachable,
        "{}",
        error_chain(error)
    );
    assert_eq!(error.label(), Some("a"));
    // Two attempts: the first one and one retry.
    assert_eq!(store.fetch_count(), 3);
    let stale = cache.apply_fetch(&wanted, results).unwrap_err();
    assert_eq!(stale.last_good, Some(&good));
    assert_eq!(stale.errors[0].kind, StoreErrorKind::Unreachable);
}

#[tokio::test]
async fn git_fetch_times_out_on_silent_server() {
    // A server that accepts connections and never responds.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = tempfile::tempdir().unwrap();
    let mut settings = settings(&format!("git://127.0.0.1:{port}/config.git"), state.path());
    settings.fetch_timeout = Duration::from_millis(300);
    settings.backoff.attempts = 1;
    let store = GitStore::new(settings).unwrap();
    let error = store.fetch(&labels(&["a"])).await.remove(0).unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Unreachable);
    assert!(
        error_chain(&error).contains("fetch timed out after 300ms"),
        "{}",
        error_chain(&error)
    );

    // The first fetch is still blocked reading, so no second one is started.
    let error = store.fetch(&labels(&["a"])).await.remove(0).unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Unreachable);
    assert!(
        error_chain(&error).contains("the previous fetch has not finished yet"),
        "{}",
        error_chain(&error)
    );
    assert_eq!(store.fetch_count(), 1);
    drop(listener);
}

#[tokio::test]
async fn git_one_fetch_per_tick() {
    let server = GitServer::start();
    let mut index = PlacementIndex {
        version: 1,
        ..PlacementIndex::default()
    };
    index.nodes.insert("b".to_owned(), Default::default());
    let index_json = String::from_utf8(index.to_json()).unwrap();
    server.commit(&[
        ("nodes/a.yaml", Some(&node_yaml("a", "web"))),
        ("nodes/b.yaml", Some(&node_yaml("b", "api"))),
        ("index.json", Some(&index_json)),
    ]);
    let state = tempfile::tempdir().unwrap();
    let mut settings = settings(&server.url(), state.path());
    settings.reuse_window = Duration::from_secs(60);
    let store = GitStore::new(settings).unwrap();

    let results = store.fetch(&labels(&["a", "b"])).await;
    assert!(results.iter().all(Result::is_ok));
    let listing = store.list_all().await.unwrap();
    assert_eq!(listing.len(), 2);
    let snapshot = store.fetch_index().await.unwrap();
    assert!(snapshot.changed);
    assert_eq!(*snapshot.index, index);
    let again = store.fetch_index().await.unwrap();
    assert!(!again.changed);
    assert_eq!(store.fetch_count(), 1);
}

#[tokio::test]
async fn git_list_all_keeps_broken_peer_copy() {
    let server = GitServer::start();
    server.commit(&[
        ("nodes/a.yaml", Some(&node_yaml("a", "web"))),
        ("nodes/b.yaml", Some(&node_yaml("b", "api"))),
    ]);
    let state = tempfile::tempdir().unwrap();
    let store = GitStore::new(settings(&server.url(), state.path())).unwrap();
    let mut cache = DesiredStateCache::new(Backend::Git);
    let update = cache.apply_listing(store.list_all().await);
    assert!(update.errors.is_empty());
    let good_b = cache.peers()["b"].clone();

    server.commit(&[
        ("nodes/b.yaml", Some("services: [\n")),
        ("nodes/c.yaml", Some(&node_yaml("c", "cache"))),
    ]);
    let update = cache.apply_listing(store.list_all().await);
    assert_eq!(update.errors.len(), 1);
    assert_eq!(update.errors[0].kind, StoreErrorKind::InvalidContent);
    assert_eq!(update.errors[0].label(), Some("b"));
    assert_eq!(cache.peers()["b"], good_b);
    assert!(cache.peers().contains_key("c"));

    // A peer deleted from the branch is gone from routing.
    server.commit(&[("nodes/a.yaml", None)]);
    cache.apply_listing(store.list_all().await);
    assert!(!cache.peers().contains_key("a"));
    assert_eq!(cache.peers()["b"], good_b);
}

#[tokio::test]
async fn git_safety_rules() {
    let server = GitServer::start();
    server.commit(&[
        ("nodes/a.yaml", Some(&node_yaml("a", "web"))),
        ("nodes/b.yaml", Some(&node_yaml("b", "api"))),
    ]);
    let state = tempfile::tempdir().unwrap();
    let store = GitStore::new(settings(&server.url(), state.path())).unwrap();
    let wanted = labels(&["a", "b"]);
    let mut cache = DesiredStateCache::new(Backend::Git);
    let good = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap()
        .clone();

    let cases: [(Option<&str>, StoreErrorKind); 4] = [
        (Some(""), StoreErrorKind::InvalidContent),
        (
            Some("node: b\nhost_ip: 10.0.0.9\n"),
            StoreErrorKind::InvalidContent,
        ),
        (Some("services: [\n"), StoreErrorKind::InvalidContent),
        (None, StoreErrorKind::NotFound),
    ];
    for (content, kind) in cases {
        server.commit(&[("nodes/b.yaml", content)]);
        let stale = cache
            .apply_fetch(&wanted, store.fetch(&wanted).await)
            .unwrap_err();
        assert_eq!(stale.last_good, Some(&good), "{content:?}");
        assert_eq!(stale.errors.len(), 1, "{content:?}");
        assert_eq!(stale.errors[0].kind, kind, "{content:?}");
        assert_eq!(stale.errors[0].label(), Some("b"));
    }
    assert_eq!(cache.desired(), Some(&good));

    let head = server.commit(&[("nodes/b.yaml", Some("services: []\n"))]);
    let fresh = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap();
    assert!(fresh.entries["b"].config.services.is_empty());
    assert_eq!(fresh.entries["a"].config.services.len(), 1);
    assert_eq!(fresh.entries["b"].revision.as_str(), head);
}

#[tokio::test]
async fn git_secrets_never_in_errors() {
    // Nothing listens on this port, so the HTTPS fetch fails after sending nothing.
    let port = support::free_port();
    let state = tempfile::tempdir().unwrap();
    let url = format!("https://alice:url-password-123@127.0.0.1:{port}/config.git");
    let mut settings = settings(&url, state.path());
    settings.token = Some(Secret::new("token-secret-456"));
    settings.backoff.attempts = 1;
    let store = GitStore::new(settings.clone()).unwrap();
    let error = store.fetch(&labels(&["a"])).await.remove(0).unwrap_err();
    let text = format!("{} {} {:?}", error, error_chain(&error), error);
    assert!(!text.contains("url-password-123"), "{text}");
    assert!(!text.contains("token-secret-456"), "{text}");
    assert!(!text.contains("alice:"), "{text}");
    assert!(
        text.contains(&format!("https://***@127.0.0.1:{port}/config.git")),
        "{text}"
    );
    assert!(!format!("{settings:?}").contains("token-secret-456"));
}

#[tokio::test]
async fn git_invalid_label_rejected_alone() {
    let server = GitServer::start();
    server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "web")))]);
    let state = tempfile::tempdir().unwrap();
    let store = GitStore::new(settings(&server.url(), state.path())).unwrap();
    let results = store.fetch(&labels(&["a", "nodes/../a"])).await;
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err().kind,
        StoreErrorKind::InvalidSettings
    );
}

#[tokio::test]
async fn git_file_url_and_local_path() {
    let server = GitServer::start();
    let head = server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "web")))]);
    for url in [
        format!("file://{}", server.bare_path().display()),
        server.bare_path().display().to_string(),
    ] {
        let state = tempfile::tempdir().unwrap();
        let store = GitStore::new(settings(&url, state.path())).unwrap();
        let entry = store.fetch(&labels(&["a"])).await.remove(0).unwrap();
        assert_eq!(entry.revision.as_str(), head, "{url}");
    }
}

#[tokio::test]
async fn git_missing_repository_is_not_found() {
    let server = GitServer::start();
    let state = tempfile::tempdir().unwrap();
    let url = server.url().replace("config.git", "absent.git");
    let store = GitStore::new(settings(&url, state.path())).unwrap();
    let error = store.fetch(&labels(&["a"])).await.remove(0).unwrap_err();
    assert_eq!(
        error.kind,
        StoreErrorKind::NotFound,
        "{}",
        error_chain(&error)
    );
    assert_eq!(
        store.fetch_count(),
        1,
        "a missing repository is not retried"
    );
}

/// An HTTP server that responds 401 with a Basic challenge to requests without an
/// `Authorization` header and 403 to the rest, recording every `Authorization` value.
fn challenge_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut authorization = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.strip_prefix("Authorization: ") {
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
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (port, seen)
}

#[tokio::test]
async fn git_token_never_sent_over_http() {
    let (port, seen) = challenge_server();
    let state = tempfile::tempdir().unwrap();
    let mut settings = settings(&format!("http://127.0.0.1:{port}/config.git"), state.path());
    settings.token = Some(Secret::new("token-secret-789"));
    settings.backoff.attempts = 1;
    let store = GitStore::new(settings).unwrap();
    let error = store.fetch(&labels(&["a"])).await.remove(0).unwrap_err();

    // gix refuses to send credentials in clear text, so the server saw no Authorization.
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(
        error.kind,
        StoreErrorKind::Denied,
        "{}",
        error_chain(&error)
    );
    assert!(!error_chain(&error).contains("token-secret-789"));
    assert_eq!(
        store.fetch_count(),
        1,
        "a rejected credential is not retried"
    );
}

#[tokio::test]
async fn git_without_token_is_denied() {
    let (port, seen) = challenge_server();
    let state = tempfile::tempdir().unwrap();
    let mut settings = settings(&format!("http://127.0.0.1:{port}/config.git"), state.path());
    settings.backoff.attempts = 1;
    let store = GitStore::new(settings).unwrap();
    let error = store.fetch(&labels(&["a"])).await.remove(0).unwrap_err();
    assert_eq!(
        error.kind,
        StoreErrorKind::Denied,
        "{}",
        error_chain(&error)
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn git_restart_reuses_existing_clone() {
    let server = GitServer::start();
    server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "web")))]);
    let state = tempfile::tempdir().unwrap();
    let wanted = labels(&["a"]);
    let first = GitStore::new(settings(&server.url(), state.path())).unwrap();
    first.fetch(&wanted).await.remove(0).unwrap();
    let marker = state.path().join("config-repo/firework-test-marker");
    std::fs::write(&marker, "kept").unwrap();
    drop(first);

    let head = server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "api")))]);
    let restarted = GitStore::new(settings(&server.url(), state.path())).unwrap();
    let entry = restarted.fetch(&wanted).await.remove(0).unwrap();
    assert_eq!(entry.revision.as_str(), head);
    assert!(
        marker.exists(),
        "the clone was replaced instead of fetched into"
    );
}

#[tokio::test]
async fn git_replaces_unreadable_clone() {
    let server = GitServer::start();
    let head = server.commit(&[("nodes/a.yaml", Some(&node_yaml("a", "web")))]);
    let state = tempfile::tempdir().unwrap();
    let clone = state.path().join("config-repo");
    std::fs::create_dir_all(&clone).unwrap();
    std::fs::write(clone.join("HEAD"), "garbage").unwrap();
    let store = GitStore::new(settings(&server.url(), state.path())).unwrap();
    let entry = store.fetch(&labels(&["a"])).await.remove(0).unwrap();
    assert_eq!(entry.revision.as_str(), head);
}
