//! One image: the metadata request, the streamed download with resume and the atomic
//! install.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, GetOptions, GetRange, GetResult, ObjectStore};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::error::ImageError;
use crate::key::{SHA256_SUFFIX, partial_path, partial_record_path, record_path};
use crate::metrics::{Progress, SyncMetrics};
use crate::record::{self, SyncRecord};
use crate::sync::SyncOptions;

/// Bytes collected from the network before one write to the partial file. Together with the
/// HTTP client's buffers this bounds the memory of one download.
const WRITE_BUFFER: usize = 2 * 1024 * 1024;

/// The way an image became ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyVia {
    /// The local copy already matched the object; no body was requested.
    Unchanged,
    /// The object was downloaded and installed.
    Downloaded,
    /// The object is missing from the source but a file exists at the path, for example a
    /// kernel baked into the machine image. The file is used as it is.
    LocalOnly,
}

/// The shared context of the images of one `sync` call.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) source_name: String,
    pub(crate) options: SyncOptions,
    pub(crate) metrics: Arc<SyncMetrics>,
}

/// A failure of one request, before it becomes an [`ImageError`].
enum Failure {
    /// Worth repeating: the store was unreachable or a stream broke.
    Transient(object_store::Error),
    /// Final.
    Fatal(ImageError),
}

impl Context {
    fn classify(&self, key: &str, path: &Path, error: object_store::Error) -> Failure {
        match error {
            object_store::Error::NotFound { .. } => Failure::Fatal(ImageError::NotFound {
                key: key.to_owned(),
                path: path.to_owned(),
                source_name: self.source_name.clone(),
            }),
            error @ (object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }) => Failure::Fatal(ImageError::Denied {
                key: key.to_owned(),
                source_name: self.source_name.clone(),
                source: error,
            }),
            object_store::Error::Precondition { .. } => Failure::Fatal(ImageError::Changed {
                key: key.to_owned(),
                source_name: self.source_name.clone(),
            }),
            error => Failure::Transient(error),
        }
    }

    fn unreachable(&self, key: &str, attempts: u32, source: object_store::Error) -> ImageError {
        ImageError::Unreachable {
            key: key.to_owned(),
            source_name: self.source_name.clone(),
            attempts,
            source,
        }
    }

    /// Sleeps before attempt `attempt + 1`: exponential backoff capped at `max_backoff`,
    /// with full jitter over the upper half so parallel downloads spread out.
    async fn backoff(&self, key: &str, attempt: u32, error: &object_store::Error) {
        let base = self
            .options
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.options.max_backoff);
        let jitter = 0.5 + rand::random::<f64>() * 0.5;
        let delay = base.mul_f64(jitter);
        self.metrics.retry();
        warn!(key, attempt, delay_ms = delay.as_millis() as u64, error = %crate::error_chain(error), "image request failed; retrying");
        tokio::time::sleep(delay).await;
    }

    /// Sends one GET with retries of transient failures.
    async fn get(
        &self,
        key: &str,
        path: &Path,
        options: GetOptions,
    ) -> Result<GetResult, ImageError> {
        let location = ObjectPath::from(key);
        let mut attempt = 0;
        loop {
            match self.store.get_opts(&location, options.clone()).await {
                Ok(result) => return Ok(result),
                Err(error) => match self.classify(key, path, error) {
                    Failure::Fatal(error) => return Err(error),
                    Failure::Transient(error) => {
                        attempt += 1;
                        if attempt >= self.options.max_attempts {
                            return Err(self.unreachable(key, attempt, error));
                        }
                        self.backoff(key, attempt, &error).await;
                    }
                },
            }
        }
    }
}

/// The remote identity of an object.
#[derive(Debug, Clone)]
struct Remote {
    etag: String,
    size: u64,
    /// A SHA-256 the source published in the object's metadata.
    sha256_metadata: Option<String>,
}

/// Makes the image at `path` match the object `key`; returns its content version.
pub(crate) async fn sync_image(
    context: &Context,
    key: &str,
    path: &Path,
) -> Result<(String, ReadyVia), ImageError> {
    let head = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    let remote = match context.get(key, path, head).await {
        Ok(result) => remote_of(&result),
        Err(ImageError::NotFound { .. }) if path.exists() => {
            let version = local_version(path)?;
            warn!(key, path = %path.display(), "image object not found; using the existing local file");
            return Ok((version, ReadyVia::LocalOnly));
        }
        Err(error) => return Err(error),
    };

    if let Some(record) = record::read(&record_path(path))
        && record.key == key
        && record.etag == remote.etag
        && record.size == remote.size
        && std::fs::metadata(path).is_ok_and(|m| m.len() == remote.size)
    {
        debug!(key, path = %path.display(), "image is up to date");
        return Ok((record.version(), ReadyVia::Unchanged));
    }

    let expected = match &remote.sha256_metadata {
        Some(digest) => Some(digest.clone()),
        None => published_digest(context, key, path).await?,
    };
    let record = download(context, key, path, &remote, expected).await?;
    Ok((record.version(), ReadyVia::Downloaded))
}

fn remote_of(result: &GetResult) -> Remote {
    let meta = &result.meta;
    // A store without ETags (none of the built-in ones) falls back to the modification time,
    // so an unchanged object is still recognised.
    let etag = meta.e_tag.clone().unwrap_or_else(|| {
        format!(
            "mtime-{}",
            meta.last_modified.timestamp_nanos_opt().unwrap_or_default()
        )
    });
    let sha256_metadata = result
        .attributes
        .get(&Attribute::Metadata("sha256".into()))
        .and_then(|value| parse_digest(value.as_ref()));
    Remote {
        etag,
        size: meta.size,
        sha256_metadata,
    }
}

/// The version of a file that exists locally but not in the source: the synced version
/// when a record exists, otherwise its device and inode.
///
/// The modification time would be wrong: a VM writing to its writable root drive changes
/// it, and every such write would count as a new image and restart the VM. A new version
/// of an image arrives by rename, under a new inode.
fn local_version(path: &Path) -> Result<String, ImageError> {
    use std::os::unix::fs::MetadataExt;

    if let Some(record) = record::read(&record_path(path)) {
        return Ok(record.version());
    }
    let meta = std::fs::metadata(path).map_err(|e| ImageError::io("stat", path, e))?;
    Ok(format!("local,dev={},ino={}", meta.dev(), meta.ino()))
}

/// Reads the first word of `<key>.sha256` as a hex SHA-256; `None` when that object does
/// not exist.
async fn published_digest(
    context: &Context,
    key: &str,
    path: &Path,
) -> Result<Option<String>, ImageError> {
    let digest_key = format!("{key}{SHA256_SUFFIX}");
    let result = match context.get(&digest_key, path, GetOptions::default()).await {
        Ok(result) => result,
        Err(ImageError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    // The digest file is a line of text; reject anything large before reading it.
    if result.meta.size > 4096 {
        warn!(
            key = digest_key,
            size = result.meta.size,
            "ignoring an oversized checksum object"
        );
        return Ok(None);
    }
    let bytes = match result.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => return Err(context.unreachable(&digest_key, 1, error)),
    };
    let text = String::from_utf8_lossy(&bytes);
    let digest = text.split_whitespace().next().and_then(parse_digest);
    if digest.is_none() {
        warn!(
            key = digest_key,
            "checksum object does not start with a hex SHA-256; ignoring it"
        );
    }
    Ok(digest)
}

fn parse_digest(text: &str) -> Option<String> {
    let text = text.trim();
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Full write buffers that may wait for the writer thread. With the buffer being filled and
/// the one being written, one download keeps at most `WRITE_BUFFER * (QUEUED_BUFFERS + 2)`
/// bytes of body data.
const QUEUED_BUFFERS: usize = 2;

/// The partial download file. A blocking thread writes and hashes full buffers while the next
/// one is received, so the network and the disk work at the same time.
struct PartialFile {
    path: PathBuf,
    buffer: Vec<u8>,
    sender: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    writer: tokio::task::JoinHandle<Result<(File, Sha256), ImageError>>,
    /// Bytes on disk, queued and in `buffer`.
    len: u64,
}

impl PartialFile {
    /// Opens the partial file, keeping its first `keep` bytes and hashing them again.
    async fn open(path: PathBuf, keep: u64) -> Result<PartialFile, ImageError> {
        let blocking_path = path.clone();
        let (file, hasher, len) = blocking(move || {
            let path = blocking_path;
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| ImageError::io("open", &path, e))?;
            file.set_len(keep)
                .map_err(|e| ImageError::io("truncate", &path, e))?;
            let mut hasher = Sha256::new();
            file.seek(SeekFrom::Start(0))
                .map_err(|e| ImageError::io("seek", &path, e))?;
            let mut chunk = vec![0u8; 1024 * 1024];
            let mut read = 0u64;
            while read < keep {
                let n = file
                    .read(&mut chunk)
                    .map_err(|e| ImageError::io("read", &path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&chunk[..n]);
                read += n as u64;
            }
            file.seek(SeekFrom::Start(read))
                .map_err(|e| ImageError::io("seek", &path, e))?;
            Ok((file, hasher, read))
        })
        .await?;

        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(QUEUED_BUFFERS);
        let writer_path = path.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let mut hasher = hasher;
            while let Some(buffer) = receiver.blocking_recv() {
                file.write_all(&buffer)
                    .map_err(|e| ImageError::io("write", &writer_path, e))?;
                hasher.update(&buffer);
            }
            Ok((file, hasher))
        });
        Ok(PartialFile {
            path,
            buffer: Vec::with_capacity(WRITE_BUFFER),
            sender: Some(sender),
            writer,
            len,
        })
    }

    /// Appends `bytes`, never growing the buffer past `WRITE_BUFFER`, so it is not
    /// reallocated.
    async fn push(&mut self, mut bytes: &[u8]) -> Result<(), ImageError> {
        while !bytes.is_empty() {
            let room = WRITE_BUFFER - self.buffer.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            self.len += now.len() as u64;
            bytes = rest;
            if self.buffer.len() >= WRITE_BUFFER {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Hands the buffer to the writer thread.
    async fn flush(&mut self) -> Result<(), ImageError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::replace(&mut self.buffer, Vec::with_capacity(WRITE_BUFFER));
        let sent = match &self.sender {
            Some(sender) => sender.send(buffer).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped, which only happens after a write error; return that error.
        self.sender = None;
        match (&mut self.writer).await {
            Ok(Err(error)) => Err(error),
            Ok(Ok(_)) | Err(_) => Err(ImageError::io(
                "write",
                &self.path,
                std::io::Error::other("the writer thread stopped"),
            )),
        }
    }

    /// Writes everything, fsyncs and returns the hex SHA-256 of the whole content.
    async fn finish(mut self) -> Result<String, ImageError> {
        self.flush().await?;
        self.sender = None;
        let (file, hasher) = self
            .writer
            .await
            .map_err(|e| ImageError::io("write", &self.path, std::io::Error::other(e)))??;
        let path = self.path.clone();
        blocking(move || {
            file.sync_all()
                .map_err(|e| ImageError::io("fsync", &path, e))?;
            Ok(hex(&hasher.finalize()))
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        ImageError::io(
            "run file operation",
            PathBuf::new(),
            std::io::Error::other(e),
        )
    })?
}

/// Downloads the object into the partial file next to `path`, resuming a partial file of the
/// same ETag, checks the size and digest, then renames it over `path` and writes the record.
async fn download(
    context: &Context,
    key: &str,
    path: &Path,
    remote: &Remote,
    expected: Option<String>,
) -> Result<SyncRecord, ImageError> {
    let partial = partial_path(path);
    let partial_record = partial_record_path(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| ImageError::io("create directory", parent, e))?;
    }

    let identity = SyncRecord {
        key: key.to_owned(),
        etag: remote.etag.clone(),
        size: remote.size,
        sha256: None,
        verified: false,
    };
    // A partial file is resumed only when it belongs to the same object version.
    let keep = match record::read(&partial_record) {
        Some(previous) if previous == identity => std::fs::metadata(&partial)
            .map(|m| m.len())
            .unwrap_or(0)
            .min(remote.size),
        _ => {
            record::remove_if_exists(&partial)?;
            record::write_atomic(&partial_record, &identity)?;
            0
        }
    };
    if keep > 0 {
        info!(
            key,
            offset = keep,
            size = remote.size,
            "resuming image download"
        );
        context.metrics.resume();
    } else {
        info!(key, size = remote.size, path = %path.display(), "downloading image");
    }

    let mut file = PartialFile::open(partial.clone(), keep).await?;
    let result = receive(context, key, path, remote, &mut file).await;
    let elapsed = match result {
        Ok(elapsed) => elapsed,
        Err(error) => {
            // Everything received so far goes to disk. A broken transfer keeps the partial file
            // for a later resume, and any other failure means the bytes are useless.
            if let Err(flush_error) = file.finish().await {
                warn!(error = %crate::error_chain(&flush_error), "failed to write a partial image download");
            }
            if !matches!(error, ImageError::Unreachable { .. }) {
                discard(&partial, &partial_record);
            }
            return Err(error);
        }
    };
    let received = file.len;
    let actual = file.finish().await?;

    if received != remote.size {
        discard(&partial, &partial_record);
        return Err(ImageError::SizeMismatch {
            key: key.to_owned(),
            path: path.to_owned(),
            expected: remote.size,
            actual: received,
        });
    }
    if let Some(expected) = &expected
        && *expected != actual
    {
        discard(&partial, &partial_record);
        return Err(ImageError::ChecksumMismatch {
            key: key.to_owned(),
            path: path.to_owned(),
            expected: expected.clone(),
            actual,
        });
    }

    // The rename gives the new content a new inode, so a VM that has the old file open keeps
    // reading the old content until it restarts.
    std::fs::rename(&partial, path).map_err(|e| ImageError::io("rename", &partial, e))?;
    let installed = SyncRecord {
        sha256: Some(actual),
        verified: expected.is_some(),
        ..identity
    };
    record::write_atomic(&record_path(path), &installed)?;
    record::remove_if_exists(&partial_record)?;
    if let Some(parent) = path.parent() {
        record::sync_dir(parent)?;
    }
    context.metrics.downloaded(elapsed);
    Ok(installed)
}

fn discard(partial: &Path, partial_record: &Path) {
    for file in [partial, partial_record] {
        if let Err(error) = record::remove_if_exists(file) {
            warn!(error = %crate::error_chain(&error), "failed to remove a partial image download");
        }
    }
}

/// Streams the body into `file`, continuing with a range request after a broken stream;
/// returns the transfer time.
async fn receive(
    context: &Context,
    key: &str,
    path: &Path,
    remote: &Remote,
    file: &mut PartialFile,
) -> Result<std::time::Duration, ImageError> {
    let mut progress = Progress::new(
        key,
        remote.size,
        file.len,
        context.options.progress_interval,
    );
    let mut attempt = 0u32;
    let started = file.len;
    loop {
        if file.len >= remote.size && remote.size > 0 {
            break;
        }
        let options = GetOptions {
            if_match: (!remote.etag.starts_with("mtime-")).then(|| remote.etag.clone()),
            range: (file.len > 0).then_some(GetRange::Offset(file.len)),
            ..GetOptions::default()
        };
        let result = context.get(key, path, options).await?;
        if result.range.start != file.len {
            return Err(ImageError::io(
                "resume",
                path,
                std::io::Error::other(format!(
                    "the store returned bytes from offset {} instead of {}",
                    result.range.start, file.len
                )),
            ));
        }
        let mut stream = result.into_stream();
        let broken = loop {
            let next = tokio::time::timeout(context.options.read_timeout, stream.next()).await;
            match next {
                Ok(Some(Ok(chunk))) => {
                    context.metrics.bytes(chunk.len() as u64);
                    file.push(&chunk).await?;
                    progress.update(file.len);
                }
                Ok(Some(Err(error))) => break Some(error),
                Ok(None) => break None,
                Err(_) => {
                    break Some(object_store::Error::Generic {
                        store: "image sync",
                        source: format!(
                            "no data received for {} s",
                            context.options.read_timeout.as_secs()
                        )
                        .into(),
                    });
                }
            }
        };
        let Some(error) = broken else {
            break;
        };
        file.flush().await?;
        match context.classify(key, path, error) {
            Failure::Fatal(error) => return Err(error),
            Failure::Transient(error) => {
                attempt += 1;
                if attempt >= context.options.max_attempts {
                    return Err(context.unreachable(key, attempt, error));
                }
                context.metrics.resume();
                context.backoff(key, attempt, &error).await;
            }
        }
    }
    let elapsed = progress.elapsed();
    let (rate, _) = progress.rate(file.len, std::time::Instant::now());
    info!(
        key,
        bytes = file.len - started,
        elapsed_ms = elapsed.as_millis() as u64,
        rate_mib_per_s = format!("{:.1}", rate / (1024.0 * 1024.0)),
        "image download finished"
    );
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parsing_accepts_only_sha256_hex() {
        let upper = "AB".repeat(32);
        assert_eq!(parse_digest(&upper), Some("ab".repeat(32)));
        assert_eq!(parse_digest("abc"), None);
        assert_eq!(parse_digest(&"zz".repeat(32)), None);
    }
}
