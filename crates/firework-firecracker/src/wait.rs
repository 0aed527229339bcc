use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::time::Instant;

use crate::error::WaitError;

/// Interval between connection attempts.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Waits until the API socket at `path` accepts a connection, or `deadline` passes.
///
/// It connects instead of checking that the file exists, because Firecracker's socket
/// file appears at `bind()` and refuses connections until `listen()`, and a stale file
/// from an earlier process would look ready too.
pub async fn wait_for_socket(path: &Path, deadline: Instant) -> Result<(), WaitError> {
    let started = Instant::now();
    loop {
        let error = match UnixStream::connect(path).await {
            Ok(_stream) => return Ok(()),
            Err(error) => error,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::Timeout {
                socket: path.to_path_buf(),
                waited: now - started,
                last_error: error,
            });
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}
