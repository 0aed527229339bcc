//! End-to-end tests of the GitOps loop on one node: a Git commit, a signed push webhook to
//! `firework-enricher serve`, publication to Garage, and the agent reading the bucket.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use firework_e2e::gitops::{BUCKET, Enricher, Garage, GitRepo, GitopsTools, S3_ENDPOINT};
use firework_e2e::node::{GuestFiles, Node, NodeOptions, process_alive};
use firework_e2e::{Tools, require_root, wait_until};

const BOOT: Duration = Duration::from_secs(30);

/// A running GitOps node. Field order is drop order.
struct Loop {
    enricher: Enricher,
    garage: Garage,
    repo: GitRepo,
    node: Node,
}

fn defaults(files: &GuestFiles) -> String {
    format!(
        "kernel: {}\nvcpus: 1\nmemory_mb: 64\n\
         kernel_args: \"console=ttyS0 reboot=k panic=1 pci=off init=/sbin/fc-init -- /bin/service\"\n",
        files.kernel.display()
    )
}

/// Returns the enricher input file of one service, on its own copy of the image.
fn service(files: &GuestFiles, name: &str, level: &str) -> (String, String) {
    let image = files.image.with_file_name(format!("{name}.ext4"));
    if !image.exists() {
        std::fs::copy(&files.image, &image).unwrap();
    }
    let text = format!(
        "name: {name}\nimage: {image}\nnode_type: web\nnetwork: true\n\
         env:\n  SERVICE_NAME: {name}\n  LOG_LEVEL: {level}\n\
         metadata:\n  host: {name}.e2e.localhost\n\
         health_check:\n  type: http\n  port: 8080\n  path: /healthz\n  interval: 1s\n  \
         timeout: 1s\n  retries: 3\n",
        image = image.display()
    );
    (format!("services/{name}.yaml"), text)
}

fn start(test: &str) -> Option<Loop> {
    start_with(test, false)
}

/// Starts the loop of `start`, with Traefik next to the agent when `traefik` is set.
fn start_with(test: &str, traefik: bool) -> Option<Loop> {
    if !require_root(test) {
        return None;
    }
    let tools = Tools::find(test)?;
    if traefik {
        tools.require_traefik(test)?;
    }
    let gitops = GitopsTools::find(test)?;
    let options = NodeOptions {
        traefik,
        store: Some(format!(
            "store_type: s3\ns3_bucket: {BUCKET}\ns3_prefix: e2e/\ns3_region: garage\n\
             s3_endpoint_url: {S3_ENDPOINT}"
        )),
        // Until Garage has made the real key, placeholder keys keep the AWS credential chain
        // from asking the instance metadata address.
        agent_env: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
            .iter()
            .map(|key| ((*key).to_owned(), "placeholder".to_owned()))
            .chain([("AWS_REGION".to_owned(), "garage".to_owned())])
            .collect(),
        ..NodeOptions::default()
    };
    let mut node = Node::start(&tools, &options).unwrap();
    let garage = Garage::start(&node, &gitops.garage).unwrap();
    // The agent needs the key that Garage created, so it starts again with it.
    node.kill_agent().unwrap();
    node.set_agent_env(garage.env());
    node.start_agent().unwrap();

    let files = node.guest_files();
    let repo = GitRepo::create(
        &node.dir().join("git"),
        &[
            ("defaults.yaml".to_owned(), defaults(&files)),
            service(&files, "shop", "info"),
        ],
    )
    .unwrap();
    let enricher = Enricher::start(&node, &gitops.enricher, &repo, &garage, "e2e").unwrap();
    let after = repo.head().unwrap();
    enricher.push(&node, &after).unwrap();
    node.reconcile().unwrap();
    node.wait_running("shop", BOOT).unwrap();
    Some(Loop {
        enricher,
        garage,
        repo,
        node,
    })
}

#[test]
fn webhook_push_starts_service() {
    let Some(gitops) = start_with("webhook_push_starts_service", true) else {
        return;
    };
    let node = &gitops.node;
    let files = node.guest_files();

    let after = gitops
        .repo
        .commit(&[service(&files, "cart", "info")], "Add cart")
        .unwrap();
    let response = gitops.enricher.push(node, &after).unwrap();
    assert!(response.contains("\"queued\":true"), "{response}");
    node.reconcile().unwrap();

    let cart = node.wait_running("cart", BOOT).unwrap();
    assert!(process_alive(cart["pid"].as_i64().unwrap()), "{cart}");
    let status = node.status().unwrap();
    assert!(status["last_error"].is_null(), "tick failed: {status}");
    if !node.runs_guests() {
        eprintln!("skipping the HTTP part of webhook_push_starts_service: no guest mode or image");
        return;
    }
    let ip = cart["guest_ip"].as_str().unwrap().to_owned();
    let body = wait_until("cart answering HTTP", BOOT, || {
        node.netns()
            .output("curl", &["-fsS", "-m", "1", &format!("http://{ip}:8080/")])
            .ok()
    })
    .unwrap();
    assert_eq!(body.trim(), "hello from cart");
    let route = node.routes_dir().join("firework-local-cart.yaml");
    assert!(route.is_file(), "no route file {}", route.display());
    let routed = wait_until("cart through Traefik", BOOT, || {
        node.get_via_traefik("cart.e2e.localhost", "/")
    })
    .unwrap();
    assert_eq!(routed.trim(), "hello from cart");
}

#[test]
fn broken_spec_push_changes_nothing() {
    let Some(gitops) = start("broken_spec_push_changes_nothing") else {
        return;
    };
    let node = &gitops.node;
    let before = node.service("shop").unwrap();
    let revision = node.status().unwrap()["revision"].clone();
    assert!(
        revision.is_string(),
        "no revision before the push: {revision}"
    );
    let published = gitops.enricher.runs_ok(node);
    let files = node.guest_files();

    let (path, text) = service(&files, "shop", "debug");
    let text = text.replace("node_type: web\n", "node_type: web\nvcpus: 0\n");
    let after = gitops
        .repo
        .commit(&[(path, text)], "Ask for no vCPU")
        .unwrap();
    gitops
        .enricher
        .push_expecting(node, &after, "error")
        .unwrap();

    let log = Enricher::log(node);
    assert!(
        log.contains(
            "services/shop.yaml:4:8: error: vcpus: invalid vcpus 0: allowed 1 to 32 \
             (Firecracker's limit) [invalid-value]"
        ),
        "{log}"
    );
    assert!(log.contains("input is invalid: 1 errors"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file: {log}");
    assert_eq!(gitops.enricher.runs_ok(node), published);

    // A tick after the refused push reads the same revision and leaves the VM alone.
    let last_start = node.status().unwrap()["last_tick"]["started_at"].clone();
    node.reconcile().unwrap();
    let status = wait_until(
        "a tick after the refused push",
        Duration::from_secs(20),
        || {
            let status = node.status().ok()?;
            (status["last_tick"]["started_at"] != last_start).then_some(status)
        },
    )
    .unwrap();
    assert_eq!(status["revision"], revision);
    assert!(status["last_error"].is_null(), "tick failed: {status}");
    let shop = node.service("shop").unwrap();
    assert_eq!(shop["state"], "running");
    assert_eq!(shop["pid"], before["pid"]);
    assert_eq!(shop["spec_hash"], before["spec_hash"]);
}

#[test]
fn failing_revision_push_rolls_back() {
    let Some(gitops) = start("failing_revision_push_rolls_back") else {
        return;
    };
    let node = &gitops.node;
    if !node.runs_guests() {
        eprintln!("skipping failing_revision_push_rolls_back: no guest mode or image");
        return;
    }
    let before = node.service("shop").unwrap();
    let files = node.guest_files();

    // The new revision boots and serves, but its probe requests a page the guest does not have.
    let (path, text) = service(&files, "shop", "debug");
    let text = text.replace("path: /healthz", "path: /missing");
    let after = gitops
        .repo
        .commit(&[(path, text)], "Probe a page that does not exist")
        .unwrap();
    gitops.enricher.push(node, &after).unwrap();
    node.reconcile().unwrap();

    let rolled_back = wait_until("shop rolled back", Duration::from_secs(90), || {
        node.service("shop")
            .filter(|svc| svc["rollout"]["state"] == "rolled back" && svc["state"] == "running")
    })
    .unwrap();
    assert_eq!(rolled_back["spec_hash"], before["spec_hash"]);
    assert_ne!(rolled_back["pid"], before["pid"]);
    assert_eq!(rolled_back["guest_ip"], before["guest_ip"]);
    let error = rolled_back["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("rolled back"), "{error}");

    // The rolled-back spec stays held on the next tick: the published revision is unchanged.
    let last_start = node.status().unwrap()["last_tick"]["started_at"].clone();
    node.reconcile().unwrap();
    let status = wait_until("a tick after the rollback", Duration::from_secs(20), || {
        let status = node.status().ok()?;
        (status["last_tick"]["started_at"] != last_start).then_some(status)
    })
    .unwrap();
    let held = status["last_tick"]["held"].to_string();
    assert!(held.contains("shop"), "shop is not held: {held}");
    assert_eq!(node.service("shop").unwrap()["pid"], rolled_back["pid"]);
}

#[test]
fn garage_outage_then_converges() {
    let Some(mut gitops) = start("garage_outage_then_converges") else {
        return;
    };
    if !gitops.node.runs_guests() {
        eprintln!("skipping garage_outage_then_converges: no guest mode or image to probe");
        return;
    }
    let before = gitops.node.service("shop").unwrap();

    gitops.garage.stop();
    gitops.node.reconcile().unwrap();
    let error = wait_until("the store error", Duration::from_secs(30), || {
        gitops.node.status().ok()?["last_error"]
            .as_str()
            .map(str::to_owned)
    })
    .unwrap();
    assert!(!error.is_empty());
    let during = gitops.node.service("shop").unwrap();
    assert_eq!(during["pid"], before["pid"]);
    assert_eq!(during["spec_hash"], before["spec_hash"]);
    assert_eq!(during["state"], "running");

    gitops.garage.resume(&gitops.node).unwrap();
    let files = gitops.node.guest_files();
    let after = gitops
        .repo
        .commit(&[service(&files, "shop", "debug")], "Raise the log level")
        .unwrap();
    gitops.enricher.push(&gitops.node, &after).unwrap();
    gitops.node.reconcile().unwrap();
    let rolled = wait_until("shop with the new spec", BOOT, || {
        gitops
            .node
            .service("shop")
            .filter(|svc| svc["state"] == "running" && svc["spec_hash"] != before["spec_hash"])
    })
    .unwrap();
    assert_ne!(rolled["pid"], before["pid"]);
    let status = wait_until("a clean tick", Duration::from_secs(10), || {
        let status = gitops.node.status().ok()?;
        status["last_error"].is_null().then_some(status)
    })
    .unwrap();
    assert!(status["revision"].is_string(), "{status}");
}
