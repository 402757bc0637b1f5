//! Volumes and container mounts: `-v`/`--mount`/`--volumes-from` parsing,
//! the named-volume store (`volumes/<name>/_data` + `volume.json`), docker's
//! `local` driver options, copy-up from the image, and the per-container
//! mount records that `run`, `inspect`, `rm -v` and `volume rm` share.

pub mod copyup;
pub mod localdrv;
pub mod mounts;
pub mod parse;
pub mod store;

pub use store::{VolumeError, VolumeMeta, VolumeStore};
