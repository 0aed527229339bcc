//! `fireworkctl render` and `fireworkctl diff`: the enricher's rendering, run locally.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use firework_enricher::publish::{self, ObjectOptions, Target};
use firework_enricher::{FileChange, RenderError, RenderOptions, Rendered, diff_files, render_dir};

/// A render or diff that could not run.
#[derive(Debug, thiserror::Error)]
pub enum RenderCommandError {
    /// The input could not be rendered; invalid input carries its diagnostics.
    #[error("failed to render {input}")]
    Render {
        /// The input tree.
        input: PathBuf,
        /// Why.
        #[source]
        source: Box<RenderError>,
    },
    /// An output file could not be written.
    #[error("failed to write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The published files could not be read.
    #[error("failed to read the published files at {target}")]
    Published {
        /// The target as given.
        target: String,
        /// Why.
        #[source]
        source: Box<publish::PublishError>,
    },
}

/// Renders the input tree at `input`.
pub fn render(input: &Path, source_commit: Option<String>) -> Result<Rendered, RenderCommandError> {
    let options = RenderOptions {
        source_commit,
        ..RenderOptions::default()
    };
    render_dir(input, &options).map_err(|source| RenderCommandError::Render {
        input: input.to_path_buf(),
        source: Box::new(source),
    })
}

/// Writes rendered files under `output`, creating directories. Files already there that the
/// render does not produce are left alone: publishing, with its stale-file rules, is the
/// enricher's job.
pub fn write_files(
    output: &Path,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(), RenderCommandError> {
    for (key, bytes) in files {
        let path = output.join(key);
        let write_error = |source| RenderCommandError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        std::fs::write(&path, bytes).map_err(write_error)?;
    }
    Ok(())
}

/// Renders `input` and compares it with what the enricher published at `published`
/// (a directory, `s3://bucket/prefix` or `gs://bucket/prefix`). The published manifest's
/// source commit is used for the render, so only real changes show.
pub async fn diff(input: &Path, published: &str) -> Result<Vec<FileChange>, RenderCommandError> {
    let published_error = |source| RenderCommandError::Published {
        target: published.to_string(),
        source: Box::new(source),
    };
    let target = Target::parse(published, &ObjectOptions::default()).map_err(published_error)?;
    let manifest = publish::read_manifest(&target)
        .await
        .map_err(published_error)?;
    let source_commit = manifest.and_then(|(manifest, _)| manifest.source_commit);
    let rendered = render(input, source_commit)?;
    let old = publish::published_files(&target)
        .await
        .map_err(published_error)?;
    Ok(diff_files(&old, &rendered.files))
}
