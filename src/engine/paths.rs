//! Where berth keeps its state (see docs/architecture.md "State on disk").

use std::path::{Path, PathBuf};

const DEFAULT_ROOT: &str = "/var/lib/berth";
const DEFAULT_RUN: &str = "/run/berth";

/// The persistent root and the volatile run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub root: PathBuf,
    pub run: PathBuf,
}

impl Paths {
    /// `root` comes from `--root`; without it `BERTH_ROOT`, then the default.
    /// An explicitly chosen root keeps its run directory inside itself so
    /// that tests with a private root never touch `/run/berth`.
    pub fn new(root: Option<PathBuf>) -> Paths {
        let explicit = root.or_else(|| {
            std::env::var_os("BERTH_ROOT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        match explicit {
            Some(root) => {
                let run = root.join("run");
                Paths { root, run }
            }
            None => Paths {
                root: PathBuf::from(DEFAULT_ROOT),
                run: PathBuf::from(DEFAULT_RUN),
            },
        }
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn images_json(&self) -> PathBuf {
        self.root.join("images.json")
    }

    pub fn lock_file(&self, name: &str) -> PathBuf {
        self.locks_dir().join(format!("{name}.lock"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_root_keeps_run_inside() {
        let p = Paths::new(Some(PathBuf::from("/tmp/x")));
        assert_eq!(p.run, PathBuf::from("/tmp/x/run"));
        assert_eq!(p.blobs_dir(), PathBuf::from("/tmp/x/blobs/sha256"));
        assert_eq!(p.layers_dir(), PathBuf::from("/tmp/x/layers"));
        assert_eq!(p.locks_dir(), PathBuf::from("/tmp/x/locks"));
        assert_eq!(p.tmp_dir(), PathBuf::from("/tmp/x/tmp"));
        assert_eq!(p.images_json(), PathBuf::from("/tmp/x/images.json"));
        assert_eq!(
            p.lock_file("images"),
            PathBuf::from("/tmp/x/locks/images.lock")
        );
    }
}
