//! Request routing: maps method, path and body to a VMM operation with the checks and
//! messages of Firecracker's API parser, and logs each request as Firecracker does.

use serde::de::DeserializeOwned;

use crate::http::{Method, Request, Response};
use crate::logger::Thread;
use crate::payload::{
    ActionBody, ActionType, BalloonBody, BootSourceBody, DriveBody, DrivePatch, EntropyBody,
    LoggerBody, MachineConfigBody, MachineConfigPatch, MetricsBody, NetworkInterfaceBody,
    NetworkInterfacePatch, SerialBody, SnapshotCreateBody, SnapshotLoadBody, VmState, VmStateBody,
    VsockBody,
};
use crate::vmm::{AfterReply, Vmm};

/// A reply and the follow-up the server must carry out after sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub response: Response,
    pub after: Option<AfterReply>,
}

impl Reply {
    fn from_result(result: Result<(), String>) -> Reply {
        Reply {
            response: match result {
                Ok(()) => Response::no_content(),
                Err(message) => Response::fault(&message),
            },
            after: None,
        }
    }

    fn body(result: Result<String, String>) -> Reply {
        Reply {
            response: match result {
                Ok(body) => Response {
                    status: 200,
                    body: Some(body),
                    deprecation: false,
                },
                Err(message) => Response::fault(&message),
            },
            after: None,
        }
    }

    fn fault(message: &str) -> Reply {
        Reply {
            response: Response::fault(message),
            after: None,
        }
    }
}

/// Decodes a JSON body with Firecracker's error wording.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|error| {
        format!("An error occurred when deserializing the json body of a request: {error}.")
    })
}

/// Checks a resource id from the path: non-empty, alphanumerics (Unicode letters too) or `_`.
fn checked_id(id: Option<&str>) -> Result<&str, String> {
    let id = id
        .filter(|id| !id.is_empty())
        .ok_or("The ID cannot be empty.")?;
    if !id.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(
            "API Resource IDs can only contain alphanumeric characters and underscores.".into(),
        );
    }
    Ok(id)
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "Get",
        Method::Put => "Put",
        Method::Patch => "Patch",
        Method::Delete => "Delete",
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "200 OK",
        204 => "204 No Content",
        400 => "400 Bad Request",
        413 => "413 Payload Too Large",
        _ => "500 Internal Server Error",
    }
}

impl Vmm {
    /// Handles one API request and logs it with Firecracker's wording.
    pub fn handle(&mut self, request: &Request) -> Reply {
        let path = request.path().to_string();
        match &request.body {
            Some(body) if !path.starts_with("/mmds") => {
                let text = String::from_utf8_lossy(body).into_owned();
                self.logger.info(
                    Thread::Api,
                    &format!(
                        "The API server received a {} request on \"{path}\" with body \"{text}\".",
                        method_name(request.method)
                    ),
                );
            }
            _ => self.logger.info(
                Thread::Api,
                &format!(
                    "The API server received a {} request on \"{path}\".",
                    method_name(request.method)
                ),
            ),
        }
        match request.method {
            Method::Get => self.counters.get_requests += 1,
            Method::Put => self.counters.put_requests += 1,
            Method::Patch => self.counters.patch_requests += 1,
            Method::Delete => {}
        }

        let reply = self.route(request.method, &path, request.body.as_deref());

        let status = reply.response.status;
        if status < 300 {
            self.logger.info(
                Thread::Api,
                &format!(
                    "The request was executed successfully. Status code: {}.",
                    status_text(status)
                ),
            );
        } else {
            self.counters.failed_requests += 1;
            let message = reply.response.fault_message().unwrap_or_default();
            self.logger.error(
                Thread::Api,
                &format!(
                    "Received Error. Status code: {}. Message: {message}",
                    status_text(status)
                ),
            );
        }
        reply
    }

    fn route(&mut self, method: Method, path: &str, body: Option<&[u8]>) -> Reply {
        let tokens: Vec<&str> = path.split_terminator('/').collect();
        let resource = tokens.get(1).copied().unwrap_or("");
        let sub = tokens.get(2).copied();

        match (method, resource, body) {
            (Method::Get, "", None) => Reply::body(Ok(self.instance_info())),
            (Method::Get, "version", None) => Reply::body(Ok(format!(
                "{{\"firecracker_version\":\"{}\"}}",
                crate::cli::FIRECRACKER_VERSION
            ))),
            (Method::Get, "machine-config", None) => Reply::body(Ok(self.machine.to_json())),
            (Method::Get, "vm", None) if sub == Some("config") => {
                Reply::body(Ok(self.full_config()))
            }
            (Method::Get, "balloon", None) if sub.is_none() => Reply::body(self.balloon()),
            (Method::Get, "mmds", None) => Reply::body(self.mmds().map(|data| data.to_string())),

            (Method::Put, "actions", Some(body)) => self.put_action(body),
            (Method::Put, "boot-source", Some(body)) => Reply::from_result(
                decode::<BootSourceBody>(body).and_then(|b| self.set_boot_source(b)),
            ),
            (Method::Put, "drives", Some(body)) => {
                Reply::from_result(self.put_drive_request(sub, body))
            }
            (Method::Put, "network-interfaces", Some(body)) => {
                Reply::from_result(self.put_network_request(sub, body))
            }
            (Method::Put, "logger", Some(body)) => {
                Reply::from_result(decode::<LoggerBody>(body).and_then(|b| self.set_logger(b)))
            }
            (Method::Put, "metrics", Some(body)) => {
                Reply::from_result(decode::<MetricsBody>(body).and_then(|b| self.set_metrics(b)))
            }
            (Method::Put, "machine-config", Some(body)) => {
                match decode::<MachineConfigBody>(body) {
                    Ok(config) => {
                        let deprecated = config.cpu_template.is_some();
                        let mut reply = Reply::from_result(self.set_machine_config(config));
                        reply.response.deprecation = deprecated;
                        reply
                    }
                    Err(message) => Reply::fault(&message),
                }
            }
            (Method::Put, "vsock", Some(body)) => match decode::<VsockBody>(body) {
                Ok(vsock) => {
                    let deprecated = vsock.vsock_id.is_some();
                    let mut reply = Reply::from_result(self.set_vsock(vsock));
                    reply.response.deprecation = deprecated;
                    reply
                }
                Err(message) => Reply::fault(&message),
            },
            (Method::Put, "balloon", Some(body)) if sub.is_none() => {
                Reply::from_result(decode::<BalloonBody>(body).and_then(|b| self.set_balloon(b)))
            }
            (Method::Put, "entropy", Some(body)) => {
                Reply::from_result(decode::<EntropyBody>(body).and_then(|b| self.set_entropy(b)))
            }
            (Method::Put, "serial", Some(body)) => {
                Reply::from_result(decode::<SerialBody>(body).and_then(|_| self.set_serial()))
            }
            (Method::Put, "mmds", Some(body)) if sub == Some("config") => Reply::from_result(
                decode::<serde_json::Value>(body).and_then(|b| self.set_mmds_config(b)),
            ),
            (Method::Put, "mmds", Some(body)) => mmds_reply(
                decode::<serde_json::Value>(body)
                    .map_err(|message| (400, message))
                    .and_then(|data| self.put_mmds(data)),
            ),

            (Method::Patch, "machine-config", Some(body)) => {
                match decode::<MachineConfigPatch>(body) {
                    Ok(patch) if patch.is_empty() => Reply::fault("Empty PATCH request."),
                    Ok(patch) => Reply::from_result(self.patch_machine_config(patch)),
                    Err(message) => Reply::fault(&message),
                }
            }
            (Method::Patch, "drives", Some(body)) => {
                Reply::from_result(self.patch_drive_request(sub, body))
            }
            (Method::Patch, "network-interfaces", Some(body)) => {
                Reply::from_result(self.patch_network_request(sub, body))
            }
            (Method::Patch, "vm", Some(body)) => Reply::from_result(
                decode::<VmStateBody>(body)
                    .and_then(|b| self.set_vm_state(b.state == VmState::Paused)),
            ),
            (Method::Patch, "mmds", Some(body)) => mmds_reply(
                decode::<serde_json::Value>(body)
                    .map_err(|message| (400, message))
                    .and_then(|patch| self.patch_mmds(patch)),
            ),

            // NOTE: CPU templates, pmem, memory hotplug, balloon statistics and
            // hinting, and device hot-unplug are recognised but not emulated.
            (Method::Put, "snapshot", Some(body)) if sub == Some("create") => Reply::from_result(
                decode::<SnapshotCreateBody>(body).and_then(|b| self.create_snapshot(b)),
            ),
            (Method::Put, "snapshot", Some(body)) if sub == Some("load") => {
                self.put_snapshot_load(body)
            }
            (Method::Put, "cpu-config" | "pmem" | "hotplug", Some(_))
            | (Method::Patch, "balloon" | "pmem" | "hotplug", Some(_))
            | (Method::Get, "balloon" | "hotplug", None)
            | (Method::Delete, "drives" | "network-interfaces" | "pmem", Some(_)) => {
                Reply::fault(&format!("The emulator does not implement {method} {path}."))
            }

            (Method::Get, _, Some(_)) => Reply::fault("GET request cannot have a body."),
            (Method::Put, _, None) => Reply::fault("Empty PUT request."),
            (Method::Patch, _, None) => Reply::fault("Empty PATCH request."),
            (Method::Delete, _, None) => Reply::fault("Empty DELETE request."),
            (method, resource, _) => Reply::fault(&format!(
                "Invalid request method and/or path: {method} {resource}."
            )),
        }
    }

    fn put_action(&mut self, body: &[u8]) -> Reply {
        let action = match decode::<ActionBody>(body) {
            Ok(action) => action.action_type,
            Err(message) => return Reply::fault(&message),
        };
        match action {
            ActionType::InstanceStart => {
                let result = self.start();
                let started = result.is_ok();
                let mut reply = Reply::from_result(result);
                if started {
                    reply.after = Some(AfterReply::Started);
                }
                reply
            }
            ActionType::FlushMetrics => Reply::from_result(self.flush_metrics_action()),
            ActionType::SendCtrlAltDel => match self.send_ctrl_alt_del() {
                Ok(reboots) => Reply {
                    response: Response::no_content(),
                    after: reboots.then_some(AfterReply::Exit(0)),
                },
                Err(message) => Reply::fault(&message),
            },
        }
    }

    fn put_snapshot_load(&mut self, body: &[u8]) -> Reply {
        let load = match decode::<SnapshotLoadBody>(body) {
            Ok(load) => load,
            Err(message) => return Reply::fault(&message),
        };
        let prefix = "An error occurred when deserializing the json body of a request:";
        match (&load.mem_backend, &load.mem_file_path) {
            (Some(_), Some(_)) => {
                return Reply::fault(&format!(
                    "{prefix} too many fields: either `mem_backend` or `mem_file_path` exclusively is required."
                ));
            }
            (None, None) => {
                return Reply::fault(&format!(
                    "{prefix} missing field: either `mem_backend` or `mem_file_path` is required."
                ));
            }
            _ => {}
        }
        let deprecated = load.mem_file_path.is_some() || load.enable_diff_snapshots.is_some();
        let mut reply = match self.load_snapshot(load) {
            Ok(()) => Reply {
                response: Response::no_content(),
                after: Some(AfterReply::Started),
            },
            Err(failure) => Reply {
                response: Response::fault(&failure.message),
                after: failure.fatal.then_some(AfterReply::Exit(1)),
            },
        };
        reply.response.deprecation = deprecated;
        reply
    }

    fn put_drive_request(&mut self, id: Option<&str>, body: &[u8]) -> Result<(), String> {
        let id = checked_id(id)?.to_string();
        let drive: DriveBody = decode(body)?;
        if drive.drive_id != id {
            return Err("The id from the path does not match the id from the body!".into());
        }
        self.put_drive(drive)
    }

    fn patch_drive_request(&mut self, id: Option<&str>, body: &[u8]) -> Result<(), String> {
        let id = checked_id(id)?.to_string();
        let patch: DrivePatch = decode(body)?;
        if patch.drive_id != id {
            return Err("The id from the path does not match the id from the body!".into());
        }
        self.patch_drive(&id, patch.path_on_host, patch.rate_limiter)
    }

    fn put_network_request(&mut self, id: Option<&str>, body: &[u8]) -> Result<(), String> {
        let id = checked_id(id)?.to_string();
        let nic: NetworkInterfaceBody = decode(body)?;
        if nic.iface_id != id {
            return Err(format!(
                "The id from the path [{id}] does not match the id from the body [{}]!",
                nic.iface_id
            ));
        }
        self.put_network_interface(nic)
    }

    fn patch_network_request(&mut self, id: Option<&str>, body: &[u8]) -> Result<(), String> {
        let id = checked_id(id)?.to_string();
        let patch: NetworkInterfacePatch = decode(body)?;
        if patch.iface_id != id {
            return Err(format!(
                "The id from the path [{id}] does not match the id from the body [{}]!",
                patch.iface_id
            ));
        }
        self.patch_network_interface(&id, patch.rx_rate_limiter, patch.tx_rate_limiter)
    }
}

fn mmds_reply(result: Result<(), (u16, String)>) -> Reply {
    Reply {
        response: match result {
            Ok(()) => Response::no_content(),
            Err((status, message)) => Response::fault_with_status(status, &message),
        },
        after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultConfig;
    use crate::logger::{Level, Logger};

    fn vmm() -> Vmm {
        let mut logger = Logger::new("unit");
        logger.set_level(Level::Off);
        Vmm::new("unit", logger, FaultConfig::default())
    }

    fn send(vmm: &mut Vmm, method: Method, uri: &str, body: Option<&str>) -> Reply {
        vmm.handle(&Request::new(method, uri, body))
    }

    #[test]
    fn start_moves_to_running() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"\x7fELF").unwrap();
        let mut vmm = vmm();
        let body = format!(r#"{{"kernel_image_path":"{}"}}"#, kernel.display());
        let reply = send(&mut vmm, Method::Put, "/boot-source", Some(&body));
        assert_eq!(reply.response.status, 204);

        let reply = send(
            &mut vmm,
            Method::Put,
            "/actions",
            Some(r#"{"action_type":"InstanceStart"}"#),
        );
        assert_eq!(reply.response.status, 204);
        assert_eq!(reply.after, Some(AfterReply::Started));
        assert_eq!(vmm.state(), crate::vmm::InstanceState::Running);

        let reply = send(
            &mut vmm,
            Method::Put,
            "/actions",
            Some(r#"{"action_type":"SendCtrlAltDel"}"#),
        );
        assert_eq!(reply.after, Some(AfterReply::Exit(0)));
    }

    #[test]
    fn paused_guest_ignores_ctrl_alt_del() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"\x7fELF").unwrap();
        let mut vmm = vmm();
        let body = format!(r#"{{"kernel_image_path":"{}"}}"#, kernel.display());
        send(&mut vmm, Method::Put, "/boot-source", Some(&body));
        send(
            &mut vmm,
            Method::Put,
            "/actions",
            Some(r#"{"action_type":"InstanceStart"}"#),
        );
        send(
            &mut vmm,
            Method::Patch,
            "/vm",
            Some(r#"{"state":"Paused"}"#),
        );
        let reply = send(
            &mut vmm,
            Method::Put,
            "/actions",
            Some(r#"{"action_type":"SendCtrlAltDel"}"#),
        );
        assert_eq!(reply.response.status, 204);
        assert_eq!(reply.after, None);
    }

    #[test]
    fn checked_id_rules() {
        assert_eq!(checked_id(Some("root_fs1")), Ok("root_fs1"));
        assert_eq!(checked_id(Some("rootfs")), Ok("rootfs"));
        assert_eq!(checked_id(Some("")), Err("The ID cannot be empty.".into()));
        assert_eq!(checked_id(None), Err("The ID cannot be empty.".into()));
        assert_eq!(
            checked_id(Some("root-fs")),
            Err(
                "API Resource IDs can only contain alphanumeric characters and underscores.".into()
            )
        );
    }

    #[test]
    fn unsupported_endpoint_named() {
        let mut vmm = vmm();
        let reply = send(&mut vmm, Method::Put, "/cpu-config", Some("{}"));
        assert_eq!(
            reply.response.fault_message().as_deref(),
            Some("The emulator does not implement PUT /cpu-config.")
        );
    }

    #[test]
    fn failed_request_counted() {
        let mut vmm = vmm();
        send(&mut vmm, Method::Put, "/machine-config", Some("{}"));
        send(&mut vmm, Method::Get, "/", None);
        assert_eq!(vmm.counters.put_requests, 1);
        assert_eq!(vmm.counters.get_requests, 1);
        assert_eq!(vmm.counters.failed_requests, 1);
    }

    #[test]
    fn config_file_boot_runs() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"\x7fELF").unwrap();
        let mut vmm = vmm();
        let config = format!(
            r#"{{"boot-source":{{"kernel_image_path":"{}"}},"machine-config":{{"vcpu_count":4,"mem_size_mib":512}}}}"#,
            kernel.display()
        );
        crate::process::boot_from_config(&mut vmm, &config).unwrap();
        assert_eq!(vmm.state(), crate::vmm::InstanceState::Running);
        assert_eq!(vmm.machine.vcpu_count, 4);
        let error = crate::process::boot_from_config(
            &mut self::vmm(),
            r#"{"boot-source":{"kernel_image_path":"/k"},"bogus":1}"#,
        )
        .unwrap_err();
        assert!(error.starts_with("unknown field `bogus`"), "{error}");
    }
}
