//! Containers: the on-disk record, the root filesystem, the OCI spec, the
//! per-container monitor process and the lifecycle operations the CLI calls.

pub mod access;
pub mod attach;
pub mod boot;
mod caps_held;
pub mod changes;
pub mod commit;
pub mod commit_changes;
pub mod console;
pub mod cp;
pub mod cp_mounts;
pub mod etcfiles;
mod host_devices;
pub mod init;
pub mod liveness;
pub mod logs;
pub mod model;
pub mod monitor;
pub mod names;
pub mod ops;
pub mod removal;
pub mod rootfs;
pub mod spawn;
pub mod spec;
pub mod stats;
pub mod store;
pub mod sweep;
pub mod tarwalk;
pub mod update;
pub mod user;
pub mod zygote;

pub use model::{ContainerRecord, HostConfig, RunConfig, Status};
pub use store::ContainerStore;

/// Hidden modes of the berth binary itself (`__monitor`, `__init`, `__dns`): checked
/// before the command line is parsed so the monitor stays small and the init
/// starts fast. Returns the exit code when argv names one of them.
pub fn hidden_entry() -> Option<i32> {
    let mut args = std::env::args_os();
    let _ = args.next();
    let mode = args.next()?;
    match mode.to_str()? {
        "__monitor" => {
            let rest: Vec<String> = args.filter_map(|a| a.into_string().ok()).collect();
            Some(monitor::entry(&rest))
        }
        "__dns" => {
            let rest: Vec<String> = args.filter_map(|a| a.into_string().ok()).collect();
            Some(crate::engine::dns::entry(&rest))
        }
        "__init" => {
            let rest: Vec<std::ffi::OsString> = args.collect();
            Some(init::entry(&rest))
        }
        _ => None,
    }
}
