//! berth's OCI runtime: an OCI bundle (config.json + rootfs) becomes a
//! running, isolated process. It knows nothing of images or networks.

mod build;
pub mod caps;
pub mod cgroups;
pub mod cli;
mod container;
pub mod defaults;
mod hooks;
pub mod mount_attr;
pub mod process;
pub mod rlimit;
pub mod seccomp;
pub mod state;
pub mod sysctl;
mod util;
mod util_caps;
mod version;

pub use cli::cli_main;
pub use container::{wait, CreateOpts, ExecOpts, Runtime, Stdio};
pub use state::{State, Status};

/// Errors of the runtime; each says what failed, on which object, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Cgroup(#[from] cgroups::CgroupError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error(transparent)]
    Caps(#[from] caps::CapsError),
    #[error(transparent)]
    Rlimit(#[from] rlimit::RlimitError),
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    #[error("invalid config: {0}")]
    Config(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("cannot {op} container {id}: it is {status}")]
    BadState {
        id: String,
        status: Status,
        op: &'static str,
    },
    #[error("cannot delete container {id} that is not stopped: {status} (use --force)")]
    NotStopped { id: String, status: Status },
    #[error("cannot start container {0}: its process exited before start")]
    Start(String),
    #[error("cannot start container {0}: {1}; the container is stopped, delete it")]
    StartHook(String, String),
    #[error("cannot start container {0}: its config.json has no process; delete it and create it from a bundle whose config.json sets process")]
    NoProcess(String),
}
