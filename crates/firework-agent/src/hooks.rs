//! Steps of the tick that other components fill in: image sync, route sync and the health
//! gate of rolling updates. Each has a default that keeps the agent complete without them.

use std::collections::BTreeMap;
use std::fmt::Debug;

use firework_net::AppliedNetwork;
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::desired::LabeledService;
use crate::error::BoxError;
use crate::spec::DesiredVm;

/// Makes each service's kernel and image available on the host and returns the image's
/// content version, which is part of the plan hash, or why the image is not usable.
pub trait ImageSync: Send + Sync + Debug {
    /// Syncs the images of `services`; the result is keyed by service name.
    fn sync<'a>(
        &'a self,
        services: &'a [LabeledService],
    ) -> BoxFuture<'a, BTreeMap<String, Result<String, String>>>;

    /// Removes synced images outside `referenced` that no VM uses (`in_use`). The
    /// default keeps every file.
    fn collect_garbage<'a>(
        &'a self,
        _referenced: &'a [std::path::PathBuf],
        _in_use: &'a [std::path::PathBuf],
    ) -> BoxFuture<'a, ()> {
        async {}.boxed()
    }
}

/// The default image step: images are already on the host. The content version is the
/// image file's device and inode, so a new file renamed over the path replaces the VM, while
/// a VM writing into its own root drive does not. A missing kernel or image makes the
/// service fail for this tick.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalImages;

impl ImageSync for LocalImages {
    fn sync<'a>(
        &'a self,
        services: &'a [LabeledService],
    ) -> BoxFuture<'a, BTreeMap<String, Result<String, String>>> {
        async move {
            let mut versions = BTreeMap::new();
            for labeled in services {
                let service = &labeled.service;
                let version = file_version(&service.kernel)
                    .map_err(|e| format!("kernel {}: {e}", service.kernel))
                    .and_then(|_| {
                        file_version(&service.image)
                            .map_err(|e| format!("image {}: {e}", service.image))
                    });
                versions.insert(service.name.clone(), version);
            }
            versions
        }
        .boxed()
    }
}

/// Returns `<device>-<inode>` of the file at `path`.
///
/// Not the modification time: a guest with a writable root drive changes it at every boot,
/// which would make every tick see a new image and restart the VM.
pub fn file_version(path: &str) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;

    let metadata = std::fs::metadata(path)?;
    Ok(format!("{}-{}", metadata.dev(), metadata.ino()))
}

/// The outcome of one route sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoutesSynced {
    /// Whether a route file was written or deleted.
    pub changed: bool,
    /// Local services whose route was skipped because their routing keys, guest IP or
    /// backend port are missing or invalid.
    pub skipped_local: usize,
}

/// Publishes ingress routes for the services that run on this node.
pub trait RouteSync: Send + Sync + Debug {
    /// Called after every apply with the desired services and the assigned addresses.
    /// Returns what the sync did, or `None` when there is no router to sync.
    fn sync<'a>(
        &'a self,
        services: &'a [LabeledService],
        network: Option<&'a AppliedNetwork>,
    ) -> BoxFuture<'a, Result<Option<RoutesSynced>, BoxError>>;
}

/// The default route step: no routes.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRoutes;

impl RouteSync for NoRoutes {
    fn sync<'a>(
        &'a self,
        _services: &'a [LabeledService],
        _network: Option<&'a AppliedNetwork>,
    ) -> BoxFuture<'a, Result<Option<RoutesSynced>, BoxError>> {
        async { Ok(None) }.boxed()
    }
}

/// Decides when an updated service is ready, so a rolling update may move on.
pub trait HealthGate: Send + Sync + Debug {
    /// Returns once `vm` is ready, or an error that stops the rolling update.
    fn wait_ready<'a>(&'a self, vm: &'a DesiredVm) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// The default gate: a VM that the runtime reports running is ready.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunningIsReady;

impl HealthGate for RunningIsReady {
    fn wait_ready<'a>(&'a self, _vm: &'a DesiredVm) -> BoxFuture<'a, Result<(), BoxError>> {
        async { Ok(()) }.boxed()
    }
}
