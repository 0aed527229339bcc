//! The Firework enricher: turns the service specs of an input tree (`defaults.yaml`,
//! `services/*.yaml`, `tenants/<id>/*.yaml`) into one node config per node and publishes them.
//!
//! [`render()`] is pure: the same input tree and options give byte-identical files.
//! [`publish`] writes them to a directory or a bucket with a manifest, compare-and-set and a
//! placement index. [`serve`] receives GitHub push webhooks and runs renders one at a time.

pub mod crossnode;
pub mod diff;
pub mod enrich;
pub mod index;
pub mod lambda;
pub mod output;
pub mod publish;
pub mod render;
pub mod run;
pub mod serve;
pub mod source;
pub mod tap;
pub mod tenant;
pub mod validate;

mod diag;

pub use diff::{FileChange, diff_files};
pub use render::{PlacementInput, RenderError, RenderOptions, Rendered, render, render_dir};
