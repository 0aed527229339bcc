//! The Garage S3 server from `firework-testkit` with bucket `images`, and `ObjectStore`
//! wrappers that count requests or break a download once.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

pub use firework_testkit::garage::{Garage, GarageOptions};

/// Starts Garage with bucket `images` and key `images-test`, or returns `None` after
/// printing why when it is not installed.
pub fn start_garage() -> Option<Garage> {
    Garage::start_with(&GarageOptions {
        bucket: "images".to_owned(),
        key_name: "images-test".to_owned(),
        capacity: "10G".to_owned(),
        data_root: None,
    })
}

/// The image sources and the upload client that reach a test Garage server.
pub trait GarageImages {
    /// Returns the image source of the server's bucket with the test key.
    fn source(&self) -> firework_images::ImageSource;

    /// Returns the image source with another secret, for denied requests.
    fn source_with_secret(&self, secret: &str) -> firework_images::ImageSource;

    /// Builds a client of the bucket for uploading test objects.
    fn store(&self) -> Arc<dyn ObjectStore>;
}

impl GarageImages for Garage {
    fn source(&self) -> firework_images::ImageSource {
        self.source_with_secret(&self.secret)
    }

    fn source_with_secret(&self, secret: &str) -> firework_images::ImageSource {
        firework_images::ImageSource::S3 {
            bucket: self.bucket.clone(),
            region: Some(self.region.clone()),
            endpoint_url: Some(self.endpoint.clone()),
            credentials: Some((self.key_id.clone(), firework_images::Secret::new(secret))),
        }
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        self.source().build(Duration::from_secs(30)).unwrap()
    }
}

/// One GET as the wrapped store saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRecord {
    pub key: String,
    pub head: bool,
    pub range: Option<GetRange>,
    pub if_match: Option<String>,
}

/// Wraps a store: records every GET, counts body bytes, and can break the first body
/// stream of one key after a number of bytes.
#[derive(Debug)]
pub struct TestStore {
    inner: Arc<dyn ObjectStore>,
    pub gets: Mutex<Vec<GetRecord>>,
    pub body_bytes: Arc<AtomicUsize>,
    break_key: Mutex<Option<(String, usize)>>,
    broken: AtomicBool,
}

impl TestStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<TestStore> {
        Arc::new(TestStore {
            inner,
            gets: Mutex::new(Vec::new()),
            body_bytes: Arc::new(AtomicUsize::new(0)),
            break_key: Mutex::new(None),
            broken: AtomicBool::new(false),
        })
    }

    /// Makes the first body of `key` fail after `after` bytes.
    pub fn break_once(&self, key: &str, after: usize) {
        *self.break_key.lock().unwrap() = Some((key.to_owned(), after));
    }

    /// GETs that asked for a body (not metadata only), for `key`.
    pub fn body_gets(&self, key: &str) -> Vec<GetRecord> {
        self.gets
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.key == key && !g.head)
            .cloned()
            .collect()
    }

    pub fn reset(&self) {
        self.gets.lock().unwrap().clear();
        self.body_bytes.store(0, Ordering::SeqCst);
    }
}

impl std::fmt::Display for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Test({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for TestStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        options: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, options).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        options: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, options).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let key = location.to_string();
        self.gets.lock().unwrap().push(GetRecord {
            key: key.clone(),
            head: options.head,
            range: options.range.clone(),
            if_match: options.if_match.clone(),
        });
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        let mut result = result;
        if head {
            return Ok(result);
        }
        let limit = {
            let target = self.break_key.lock().unwrap();
            match &*target {
                Some((target, after))
                    if *target == key && !self.broken.swap(true, Ordering::SeqCst) =>
                {
                    Some(*after)
                }
                _ => None,
            }
        };
        let GetResult {
            payload,
            meta,
            range,
            attributes,
            extensions,
        } = result;
        let stream = match payload {
            GetResultPayload::Stream(stream) => stream,
            file => GetResult {
                payload: file,
                meta: meta.clone(),
                range: range.clone(),
                attributes: attributes.clone(),
                extensions: extensions.clone(),
            }
            .into_stream(),
        };
        result = GetResult {
            payload: GetResultPayload::Stream(counted_stream(
                stream,
                limit,
                Arc::clone(&self.body_bytes),
            )),
            meta,
            range,
            attributes,
            extensions,
        };
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Counts the bytes of `stream` into `counter`; with `limit`, stops after that many bytes
/// with a connection error.
fn counted_stream(
    stream: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    limit: Option<usize>,
    counter: Arc<AtomicUsize>,
) -> BoxStream<'static, object_store::Result<bytes::Bytes>> {
    struct State {
        stream: BoxStream<'static, object_store::Result<bytes::Bytes>>,
        seen: usize,
        limit: Option<usize>,
        fail_next: bool,
        done: bool,
        counter: Arc<AtomicUsize>,
    }
    let state = State {
        stream,
        seen: 0,
        limit,
        fail_next: false,
        done: false,
        counter,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        if state.fail_next {
            state.done = true;
            let error = object_store::Error::Generic {
                store: "test",
                source: "connection reset by the test".into(),
            };
            return Some((Err(error), state));
        }
        match state.stream.next().await {
            None => None,
            Some(Err(error)) => {
                state.done = true;
                Some((Err(error), state))
            }
            Some(Ok(mut chunk)) => {
                if let Some(limit) = state.limit
                    && state.seen + chunk.len() >= limit
                {
                    chunk = chunk.slice(..limit - state.seen);
                    state.fail_next = true;
                }
                state.seen += chunk.len();
                state.counter.fetch_add(chunk.len(), Ordering::SeqCst);
                Some((Ok(chunk), state))
            }
        }
    })
    .boxed()
}
