//! The true state of a container as any command sees it: state.json, made
//! honest by probing the monitor's lock. A monitor killed with -9 leaves a
//! "running" state.json behind; it reads as exited here.

use std::fs::OpenOptions;

use rustix::fs::{flock, FlockOperation};

use super::model::{State, Status};
use super::store::ContainerStore;

/// Whether a monitor holds `monitor.lock` now.
pub fn monitor_alive(store: &ContainerStore, id: &str) -> bool {
    let Ok(f) = OpenOptions::new()
        .read(true)
        .open(store.monitor_lock_path(id))
    else {
        return false;
    };
    match flock(&f, FlockOperation::NonBlockingLockShared) {
        Ok(()) => false,
        Err(_) => true,
    }
}

/// The state, corrected for a dead monitor.
pub fn current(store: &ContainerStore, id: &str) -> anyhow::Result<State> {
    let mut st = store.load_state(id)?;
    if st.running() && !monitor_alive(store, id) {
        st.status = Status::Exited;
        st.pid = 0;
        if st.exit_code == 0 {
            st.exit_code = 255;
        }
        if st.error.is_empty() {
            st.error = "the container's monitor exited unexpectedly".into();
        }
    }
    Ok(st)
}
