//! One test per payload rule, through the real Unix socket, asserting the exact status and
//! fault message and that a rejected request changed nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::Emulator;

const DEFAULT_MACHINE: &str = r#"{"vcpu_count":1,"mem_size_mib":128,"smt":false,"track_dirty_pages":false,"huge_pages":"None"}"#;
const VCPU_ERROR: &str = "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.";

#[test]
fn vcpu_range_enforced() {
    let emulator = Emulator::start(&[]);
    for count in [0, 33] {
        emulator.expect_fault(
            "PUT",
            "/machine-config",
            Some(&format!(r#"{{"vcpu_count":{count},"mem_size_mib":128}}"#)),
            VCPU_ERROR,
        );
    }
    assert_eq!(emulator.get("/machine-config").body, DEFAULT_MACHINE);
    emulator.put_ok("/machine-config", r#"{"vcpu_count":32,"mem_size_mib":128}"#);
    assert_eq!(emulator.get("/machine-config").json()["vcpu_count"], 32);
}

#[test]
fn vcpu_count_is_u8() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/machine-config",
        Some(r#"{"vcpu_count":256,"mem_size_mib":128}"#),
        "An error occurred when deserializing the json body of a request: invalid value: integer `256`, expected u8 at line 1 column 17.",
    );
}

#[test]
fn smt_needs_even_vcpus() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/machine-config",
        Some(r#"{"vcpu_count":3,"mem_size_mib":128,"smt":true}"#),
        VCPU_ERROR,
    );
    emulator.put_ok(
        "/machine-config",
        r#"{"vcpu_count":1,"mem_size_mib":128,"smt":true}"#,
    );
    emulator.put_ok(
        "/machine-config",
        r#"{"vcpu_count":4,"mem_size_mib":128,"smt":true}"#,
    );
}

#[test]
fn memory_size_rules() {
    let emulator = Emulator::start(&[]);
    let message = "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.";
    emulator.expect_fault(
        "PUT",
        "/machine-config",
        Some(r#"{"vcpu_count":1,"mem_size_mib":0}"#),
        message,
    );
    emulator.expect_fault(
        "PUT",
        "/machine-config",
        Some(r#"{"vcpu_count":1,"mem_size_mib":129,"huge_pages":"2M"}"#),
        message,
    );
    assert_eq!(emulator.get("/machine-config").body, DEFAULT_MACHINE);
}

#[test]
fn put_resets_omitted_fields_patch_keeps_them() {
    let emulator = Emulator::start(&[]);
    emulator.put_ok(
        "/machine-config",
        r#"{"vcpu_count":2,"mem_size_mib":256,"track_dirty_pages":true}"#,
    );
    let response = emulator.request("PATCH", "/machine-config", Some(r#"{"vcpu_count":4}"#));
    assert_eq!(response.status, 204);
    assert_eq!(
        emulator.get("/machine-config").body,
        r#"{"vcpu_count":4,"mem_size_mib":256,"smt":false,"track_dirty_pages":true,"huge_pages":"None"}"#
    );
    emulator.put_ok("/machine-config", r#"{"vcpu_count":2,"mem_size_mib":256}"#);
    assert_eq!(
        emulator.get("/machine-config").json()["track_dirty_pages"],
        false
    );
    emulator.expect_fault(
        "PATCH",
        "/machine-config",
        Some("{}"),
        "Empty PATCH request.",
    );
}

#[test]
fn cpu_template_sets_deprecation_header() {
    let emulator = Emulator::start(&[]);
    let response = emulator.put(
        "/machine-config",
        r#"{"vcpu_count":1,"mem_size_mib":128,"cpu_template":"T2"}"#,
    );
    assert_eq!(response.status, 204);
    assert!(
        response.head.contains("\r\nDeprecation: true"),
        "{}",
        response.head
    );
    assert_eq!(
        emulator.get("/machine-config").body,
        r#"{"vcpu_count":1,"mem_size_mib":128,"smt":false,"cpu_template":"T2","track_dirty_pages":false,"huge_pages":"None"}"#
    );
}

#[test]
fn unknown_fields_rejected() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/machine-config",
        Some(r#"{"vcpu_count":1,"mem_size_mib":128,"ht_enabled":true}"#),
        "An error occurred when deserializing the json body of a request: unknown field `ht_enabled`, expected one of `vcpu_count`, `mem_size_mib`, `smt`, `cpu_template`, `track_dirty_pages`, `huge_pages` at line 1 column 47.",
    );
    emulator.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"InstanceStart","extra":1}"#),
        "An error occurred when deserializing the json body of a request: unknown field `extra`, expected `action_type` at line 1 column 38.",
    );
}

#[test]
fn missing_required_field() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/machine-config",
        Some(r#"{"mem_size_mib":128}"#),
        "An error occurred when deserializing the json body of a request: missing field `vcpu_count` at line 1 column 20.",
    );
}

#[test]
fn kernel_must_exist() {
    let emulator = Emulator::start(&[]);
    let missing = emulator.dir.path().join("nope");
    emulator.expect_fault(
        "PUT",
        "/boot-source",
        Some(&format!(r#"{{"kernel_image_path":"{}"}}"#, missing.display())),
        "Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)",
    );
    assert_eq!(
        emulator.get("/vm/config").json()["boot-source"]["kernel_image_path"],
        ""
    );
}

#[test]
fn initrd_must_exist() {
    let emulator = Emulator::start(&[]);
    let kernel = emulator.kernel();
    emulator.expect_fault(
        "PUT",
        "/boot-source",
        Some(&format!(
            r#"{{"kernel_image_path":"{kernel}","initrd_path":"/nonexistent/initrd"}}"#
        )),
        "Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. No such file or directory (os error 2)",
    );
}

#[test]
fn boot_args_length_limit() {
    let emulator = Emulator::start(&[]);
    let kernel = emulator.kernel();
    emulator.expect_fault(
        "PUT",
        "/boot-source",
        Some(&format!(
            r#"{{"kernel_image_path":"{kernel}","boot_args":"{}"}}"#,
            "a".repeat(2048)
        )),
        "Boot source error: The kernel command line is invalid: Inserting string would make command line too long.",
    );
    emulator.put_ok(
        "/boot-source",
        &format!(
            r#"{{"kernel_image_path":"{kernel}","boot_args":"{}"}}"#,
            "a".repeat(2047)
        ),
    );
    // The line fits at PUT time but not with the additions made at InstanceStart.
    emulator.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"InstanceStart"}"#),
        "Start microvm error: Invalid kernel command line: Inserting string would make command line too long.",
    );
    assert_eq!(emulator.get("/").json()["state"], "Not started");
}

#[test]
fn boot_args_printable_ascii() {
    let emulator = Emulator::start(&[]);
    let kernel = emulator.kernel();
    emulator.expect_fault(
        "PUT",
        "/boot-source",
        Some(&format!(
            r#"{{"kernel_image_path":"{kernel}","boot_args":"console=ttyS0\tpanic=1"}}"#
        )),
        "Boot source error: The kernel command line is invalid: String contains a non-printable ASCII character.",
    );
}

#[test]
fn kernel_must_be_elf_at_start() {
    let emulator = Emulator::start(&[]);
    let bzimage = emulator.file("bzImage", b"MZ\x00\x00not-elf");
    emulator.put_ok(
        "/boot-source",
        &format!(r#"{{"kernel_image_path":"{bzimage}"}}"#),
    );
    emulator.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"InstanceStart"}"#),
        "Start microvm error: System configuration error: Cannot load kernel due to invalid memory configuration or invalid kernel image: Kernel Loader: failed to load ELF kernel image: Kernel Loader: Invalid Elf magic number",
    );
}

#[test]
fn drive_file_must_exist() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/drives/rootfs",
        Some(r#"{"drive_id":"rootfs","path_on_host":"/nonexistent/rootfs.ext4","is_root_device":true,"is_read_only":false}"#),
        "Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: No such file or directory (os error 2) /nonexistent/rootfs.ext4",
    );
    assert_eq!(
        emulator.get("/vm/config").json()["drives"],
        serde_json::json!([])
    );
}

#[test]
fn drive_ids_checked() {
    let emulator = Emulator::start(&[]);
    let disk = emulator.file("disk", &[0; 512]);
    emulator.expect_fault(
        "PUT",
        "/drives/root-fs",
        Some(&format!(
            r#"{{"drive_id":"root-fs","path_on_host":"{disk}","is_root_device":true}}"#
        )),
        "API Resource IDs can only contain alphanumeric characters and underscores.",
    );
    emulator.expect_fault(
        "PUT",
        "/drives/rootfs",
        Some(&format!(
            r#"{{"drive_id":"other","path_on_host":"{disk}","is_root_device":true}}"#
        )),
        "The id from the path does not match the id from the body!",
    );
    emulator.expect_fault(
        "PUT",
        "/drives/",
        Some(&format!(
            r#"{{"drive_id":"x","path_on_host":"{disk}","is_root_device":true}}"#
        )),
        "The ID cannot be empty.",
    );
}

#[test]
fn single_root_drive_kept_first() {
    let emulator = Emulator::start(&[]);
    let data = emulator.file("data", &[0; 512]);
    let root = emulator.file("root", &[0; 512]);
    emulator.put_ok(
        "/drives/data",
        &format!(r#"{{"drive_id":"data","path_on_host":"{data}","is_root_device":false}}"#),
    );
    emulator.put_ok(
        "/drives/rootfs",
        &format!(r#"{{"drive_id":"rootfs","path_on_host":"{root}","is_root_device":true}}"#),
    );
    emulator.expect_fault(
        "PUT",
        "/drives/second",
        Some(&format!(
            r#"{{"drive_id":"second","path_on_host":"{data}","is_root_device":true}}"#
        )),
        "Drive config error: A root block device already exists!",
    );
    let drives = emulator.get("/vm/config").json()["drives"].clone();
    let ids: Vec<&str> = drives
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["drive_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["rootfs", "data"]);
}

#[test]
fn drive_needs_path_or_socket() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/drives/rootfs",
        Some(r#"{"drive_id":"rootfs","is_root_device":true}"#),
        "Drive config error: Unable to create the virtio block device: Invalid block config.",
    );
}

#[test]
fn mac_format_checked() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/network-interfaces/eth0",
        Some(r#"{"iface_id":"eth0","host_dev_name":"tap0","guest_mac":"06:00:ac:10:00"}"#),
        "An error occurred when deserializing the json body of a request: The provided MAC address is invalid. at line 1 column 71.",
    );
}

#[test]
fn tap_must_exist() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/network-interfaces/eth0",
        Some(r#"{"iface_id":"eth0","host_dev_name":"fwnotap9"}"#),
        "Network config error: Could not create the network device: Open tap device failed: Error while creating ifreq structure: Operation not permitted (os error 1). Invalid TUN/TAP Backend provided by fwnotap9. Check our documentation on setting up the network devices.",
    );
    emulator.expect_fault(
        "PUT",
        "/network-interfaces/eth0",
        Some(r#"{"iface_id":"eth0","host_dev_name":"lo"}"#),
        "Network config error: Could not create the network device: Open tap device failed: Error while creating ifreq structure: Invalid argument (os error 22). Invalid TUN/TAP Backend provided by lo. Check our documentation on setting up the network devices.",
    );
    emulator.expect_fault(
        "PUT",
        "/network-interfaces/eth0",
        Some(r#"{"iface_id":"eth0","host_dev_name":"tap-name-too-long"}"#),
        "Network config error: Could not create the network device: Open tap device failed: Invalid interface name",
    );
    assert_eq!(
        emulator.get("/vm/config").json()["network-interfaces"],
        serde_json::json!([])
    );
}

#[test]
fn network_id_mismatch() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/network-interfaces/eth0",
        Some(r#"{"iface_id":"eth1","host_dev_name":"tap0"}"#),
        "The id from the path [eth0] does not match the id from the body [eth1]!",
    );
}

#[test]
fn mtu_range_checked() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/network-interfaces/eth0",
        Some(r#"{"iface_id":"eth0","host_dev_name":"tap0","mtu":67}"#),
        "Network config error: MTU 67 is out of range [68, 65535]",
    );
}

#[test]
fn logger_path_and_level_checked() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/logger",
        Some(r#"{"log_path":"/nonexistent/dir/log"}"#),
        "Logger error: Failed to open target file: No such file or directory (os error 2)",
    );
    emulator.expect_fault(
        "PUT",
        "/logger",
        Some(r#"{"level":"Loud"}"#),
        "An error occurred when deserializing the json body of a request: Invalid LevelFilter at line 1 column 16.",
    );
    let log = emulator.dir.path().join("fc.log");
    emulator.put_ok(
        "/logger",
        &format!(
            r#"{{"log_path":"{}","level":"warning","show_level":true}}"#,
            log.display()
        ),
    );
    // Logger may be reconfigured before boot.
    emulator.put_ok(
        "/logger",
        &format!(
            r#"{{"log_path":"{}","level":"Info","show_level":true}}"#,
            log.display()
        ),
    );
    emulator.get("/");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(":fc_api:INFO] The API server received a Get request on \"/\"."),
        "{text}"
    );
}

#[test]
fn metrics_only_once() {
    let emulator = Emulator::start(&[]);
    let path = emulator.dir.path().join("metrics");
    let body = format!(r#"{{"metrics_path":"{}"}}"#, path.display());
    emulator.put_ok("/metrics", &body);
    assert!(path.exists(), "metrics file created at PUT");
    emulator.expect_fault(
        "PUT",
        "/metrics",
        Some(&body),
        "Metrics error: Cannot initialize the metrics system due to bad user input: Reinitialization of metrics not allowed.",
    );
}

#[test]
fn start_requires_kernel() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"InstanceStart"}"#),
        "Start microvm error: Cannot start microvm without kernel configuration.",
    );
    assert_eq!(emulator.get("/").json()["state"], "Not started");
}

#[test]
fn unknown_action_rejected() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"Reboot"}"#),
        "An error occurred when deserializing the json body of a request: unknown variant `Reboot`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel` at line 1 column 23.",
    );
}

#[test]
fn balloon_larger_than_memory() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/balloon",
        Some(r#"{"amount_mib":129,"deflate_on_oom":true}"#),
        "Balloon config error: Amount of pages requested is too large.",
    );
    emulator.expect_fault(
        "GET",
        "/balloon",
        None,
        "Balloon config error: No balloon device found.",
    );
}

#[test]
fn vsock_path_must_be_free() {
    let emulator = Emulator::start(&[]);
    let occupied = emulator.file("vsock.sock", b"");
    emulator.expect_fault(
        "PUT",
        "/vsock",
        Some(&format!(r#"{{"guest_cid":3,"uds_path":"{occupied}"}}"#)),
        "Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: Address in use (os error 98)",
    );
}

#[test]
fn drive_path_directory_rejected() {
    let emulator = Emulator::start(&[]);
    let dir = emulator.dir.path().display().to_string();
    emulator.expect_fault(
        "PUT",
        "/drives/rootfs",
        Some(&format!(r#"{{"drive_id":"rootfs","path_on_host":"{dir}","is_root_device":true}}"#)),
        &format!("Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: Is a directory (os error 21) {dir}"),
    );
}
