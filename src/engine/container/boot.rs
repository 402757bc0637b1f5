//! `berth system boot`: after a reboot the run directory is empty, so
//! every container whose state said "running" reads as exited (255: its
//! monitor lock is gone). This starts the ones docker's daemon restarts
//! when it comes back (its restart manager on daemon start): `always` (even
//! after a manual stop), `unless-stopped` unless a user stopped it, and
//! `on-failure` when the last exit code was not 0 and no user stopped it;
//! never a container that was never started. Containers already running
//! are left alone, so boot may run twice.

use anyhow::Result;

use super::liveness;
use super::store::ContainerStore;

/// Whether boot starts a container with this policy and stop history.
pub fn wants_start(policy: &str, manually_stopped: bool, exit_code: i32) -> bool {
    match policy {
        "always" => true,
        "unless-stopped" => !manually_stopped,
        "on-failure" => !manually_stopped && exit_code != 0,
        _ => false,
    }
}

/// Starts what boot should start, oldest first; per container its name and
/// the outcome.
pub fn boot(cs: &ContainerStore) -> Result<Vec<(String, Result<(), String>)>> {
    let mut recs = cs.list()?;
    recs.sort_by_key(|r| r.created);
    let mut out = Vec::new();
    for rec in recs {
        let Ok(st) = liveness::current(cs, &rec.id) else {
            continue;
        };
        if st.running() || st.started_at.is_none() {
            continue;
        }
        let p = &rec.host_config.restart_policy.name;
        if !wants_start(p, st.manually_stopped, st.exit_code) {
            continue;
        }
        let r =
            super::ops::start(cs, &rec.id)
                .map(|_| ())
                .map_err(|e| match e.downcast_ref::<super::spawn::StartError>() {
                    Some(s) => s.0.clone(),
                    None => format!("{e:#}"),
                });
        out.push((rec.name.clone(), r));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::wants_start;

    #[test]
    fn policies() {
        assert!(wants_start("always", false, 0));
        assert!(wants_start("always", true, 137));
        assert!(wants_start("unless-stopped", false, 255));
        assert!(!wants_start("unless-stopped", true, 143));
        assert!(wants_start("on-failure", false, 255));
        assert!(!wants_start("on-failure", false, 0));
        assert!(!wants_start("on-failure", true, 137));
        assert!(!wants_start("no", false, 255));
    }
}
