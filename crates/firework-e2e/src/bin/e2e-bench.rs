//! Bench binary for the end-to-end harness (root only).
//!
//! ```text
//! e2e-bench cold-start <N> [--no-guest]   N services in one label, one reconcile: time until
//!                                          all run (and answer HTTP with guests), agent VmRSS
//! e2e-bench latency <RUNS>                 write a new service + POST /v1/reconcile until the
//!                                          guest answers HTTP on its address
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use firework_e2e::node::{GuestFiles, Node, NodeOptions};
use firework_e2e::{Tools, wait_until};

fn service(files: &GuestFiles, name: &str) -> Result<String, String> {
    let image = files.image.with_file_name(format!("{name}.ext4"));
    if !image.exists() {
        std::fs::copy(&files.image, &image)
            .map_err(|error| format!("failed to copy the image for {name}: {error}"))?;
    }
    Ok(format!(
        "  - name: {name}\n    image: {image}\n    kernel: {kernel}\n    vcpus: 1\n    \
         memory_mb: 64\n    kernel_args: \"console=ttyS0 reboot=k panic=1 pci=off \
         init=/sbin/fc-init -- /bin/service\"\n    network: {{}}\n    env:\n      \
         SERVICE_NAME: {name}\n",
        image = image.display(),
        kernel = files.kernel.display(),
    ))
}

fn label(node: &Node, names: &[String]) -> Result<String, String> {
    let files = node.guest_files();
    let mut text = String::from("node: web\nservices:\n");
    for name in names {
        text.push_str(&service(&files, name)?);
    }
    Ok(text)
}

fn agent_rss_kib(node: &Node) -> Option<u64> {
    let pid = node.agent_pid()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn answers(node: &Node, name: &str) -> bool {
    let Some(ip) = node
        .service(name)
        .and_then(|svc| svc["guest_ip"].as_str().map(str::to_owned))
    else {
        return false;
    };
    node.netns()
        .output("curl", &["-fsS", "-m", "1", &format!("http://{ip}:8080/")])
        .is_ok_and(|body| body.trim() == format!("hello from {name}"))
}

fn cold_start(tools: &Tools, count: usize, guest: bool) -> Result<(), String> {
    let options = NodeOptions {
        guest,
        ..NodeOptions::default()
    };
    let node = Node::start(tools, &options)?;
    let names: Vec<String> = (0..count).map(|i| format!("svc{i}")).collect();
    node.write_label("web", &label(&node, &names)?)?;
    let rss_idle = agent_rss_kib(&node);

    let start = Instant::now();
    node.reconcile()?;
    wait_until("every service running", Duration::from_secs(600), || {
        let status = node.status().ok()?;
        let running = status["services"]
            .as_array()?
            .iter()
            .filter(|svc| svc["state"] == "running")
            .count();
        (running == count).then_some(())
    })?;
    let all_running = start.elapsed();
    let mut all_answer = None;
    if node.runs_guests() {
        for name in &names {
            wait_until(
                &format!("{name} answering"),
                Duration::from_secs(120),
                || answers(&node, name).then_some(()),
            )?;
        }
        all_answer = Some(start.elapsed());
    }
    // Let a tick pass with every VM adopted before reading the steady-state RSS.
    node.reconcile()?;
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "cold-start: {count} services, guests {}: all running after {:.2} s, all answering \
         HTTP after {}, agent VmRSS {} KiB idle -> {} KiB with {count} VMs",
        node.runs_guests(),
        all_running.as_secs_f64(),
        all_answer.map_or("n/a".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
        rss_idle.map_or("?".to_owned(), |v| v.to_string()),
        agent_rss_kib(&node).map_or("?".to_owned(), |v| v.to_string()),
    );
    Ok(())
}

fn latency(tools: &Tools, runs: usize) -> Result<(), String> {
    let node = Node::start(tools, &NodeOptions::default())?;
    if !node.runs_guests() {
        return Err("latency needs guest mode and build/example-rootfs.ext4".to_owned());
    }
    let mut names = Vec::new();
    let mut samples = Vec::new();
    for run in 0..runs {
        let name = format!("new{run}");
        names.push(name.clone());
        // Copy the image before the clock starts: image distribution is not measured here.
        let text = label(&node, &names)?;
        let start = Instant::now();
        node.write_label("web", &text)?;
        node.reconcile()?;
        wait_until(
            &format!("{name} answering"),
            Duration::from_secs(60),
            || answers(&node, &name).then_some(()),
        )?;
        let elapsed = start.elapsed();
        println!("latency run {run}: {:.3} s", elapsed.as_secs_f64());
        samples.push(elapsed.as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "latency: {runs} runs, min {:.3} s, median {:.3} s, max {:.3} s",
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1]
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("e2e-bench: needs root (network namespaces, TAP devices, nftables)");
        return ExitCode::from(2);
    }
    let Some(tools) = Tools::find("e2e-bench") else {
        return ExitCode::from(2);
    };
    let number = |index: usize, default: usize| {
        args.get(index)
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let result = match args.first().map(String::as_str) {
        Some("cold-start") => cold_start(
            &tools,
            number(1, 100),
            !args.iter().any(|arg| arg == "--no-guest"),
        ),
        Some("latency") => latency(&tools, number(1, 5)),
        _ => Err("usage: e2e-bench cold-start <N> [--no-guest] | latency <RUNS>".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("e2e-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
