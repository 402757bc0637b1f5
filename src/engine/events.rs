//! Progress events of pull and push, rendered by the CLI.

/// What a pull reports while it runs; the CLI renders bars or lines.
#[derive(Debug, Clone, PartialEq)]
pub enum PullEvent {
    /// Layers are known; `id` is the 12-hex short form of the blob digest.
    Waiting {
        id: String,
    },
    /// Queued behind the concurrent-download limit (docker's "Waiting").
    Queued {
        id: String,
    },
    AlreadyExists {
        id: String,
    },
    Downloading {
        id: String,
        current: u64,
        total: Option<u64>,
    },
    VerifyingChecksum {
        id: String,
    },
    DownloadComplete {
        id: String,
    },
    /// Download finished and unpacking is still catching up.
    Extracting {
        id: String,
    },
    PullComplete {
        id: String,
    },
}

pub trait PullObserver: Send + Sync {
    fn event(&self, e: PullEvent);
}

/// An observer that drops everything (`-q`).
pub struct Silent;
impl PullObserver for Silent {
    fn event(&self, _e: PullEvent) {}
}

/// What a push reports per layer.
#[derive(Debug, Clone, PartialEq)]
pub enum PushEvent {
    Preparing { id: String },
    Pushing { id: String, total: u64 },
    Pushed { id: String },
    LayerExists { id: String },
    Mounted { id: String, from: String },
}

pub trait PushObserver: Send + Sync {
    fn event(&self, e: PushEvent);
}
