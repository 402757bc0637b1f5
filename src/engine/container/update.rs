//! `update`: new resource limits and restart policy for a container,
//! written to `container.json` (so every later start uses them; the
//! monitor re-reads the record before each restart and the policy before
//! deciding to restart) and applied to a running container's cgroups
//! through the runtime crate.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};

use super::liveness;
use super::model::{HostConfig, RestartPolicy};
use super::store::ContainerStore;
use crate::engine::fsutil::atomic_write;

/// What the user asked to change; `None` keeps the current value.
#[derive(Debug, Default, Clone)]
pub struct UpdateRequest {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub restart: Option<RestartPolicy>,
}

impl UpdateRequest {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.memory_swap.is_none()
            && self.memory_reservation.is_none()
            && self.nano_cpus.is_none()
            && self.cpu_shares.is_none()
            && self.cpuset_cpus.is_none()
            && self.cpuset_mems.is_none()
            && self.pids_limit.is_none()
            && self.blkio_weight.is_none()
            && self.restart.is_none()
    }
}

/// Applies `req` to `hc` with docker's checks (daemon/update.go and
/// verifyContainerResources).
pub fn merge(hc: &mut HostConfig, req: &UpdateRequest) -> Result<()> {
    if let Some(m) = req.memory {
        if m > 0 && m < 6 * 1024 * 1024 {
            bail!("Minimum memory limit allowed is 6MB");
        }
        // docker: a new limit above the current swap limit needs a new swap.
        if req.memory_swap.is_none() && hc.memory_swap > 0 && m > hc.memory_swap {
            bail!("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time");
        }
        hc.memory = m;
    }
    if let Some(s) = req.memory_swap {
        if s > 0 && hc.memory == 0 {
            bail!("You should always set the Memory limit when using Memoryswap limit");
        }
        if s > 0 && s < hc.memory {
            bail!("Minimum memoryswap limit should be larger than memory limit, see usage");
        }
        hc.memory_swap = s;
    }
    if let Some(r) = req.memory_reservation {
        if hc.memory > 0 && r > hc.memory {
            bail!("Minimum memory limit can not be less than memory reservation limit, see usage");
        }
        hc.memory_reservation = r;
    }
    if let Some(c) = req.nano_cpus {
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        if c < 0 || c > ncpu * 1_000_000_000 {
            bail!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            );
        }
        hc.nano_cpus = c;
    }
    if let Some(s) = req.cpu_shares {
        hc.cpu_shares = s;
    }
    if let Some(c) = &req.cpuset_cpus {
        hc.cpuset_cpus = c.clone();
    }
    if let Some(m) = &req.cpuset_mems {
        hc.cpuset_mems = m.clone();
    }
    if let Some(p) = req.pids_limit {
        hc.pids_limit = Some(p);
    }
    if let Some(w) = req.blkio_weight {
        if w != 0 && !(10..=1000).contains(&w) {
            bail!("Range of blkio weight is from 10 to 1000");
        }
        hc.blkio_weight = w;
    }
    if let Some(r) = &req.restart {
        if hc.auto_remove && r.name != "no" {
            bail!(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
            );
        }
        hc.restart_policy = r.clone();
    }
    Ok(())
}

/// The `linux.resources` for what changed, in OCI form.
pub fn resources(hc: &HostConfig, req: &UpdateRequest) -> Value {
    let mut r = Map::new();
    let mut mem = Map::new();
    if req.memory.is_some() || req.memory_swap.is_some() {
        // Unlimited is -1 in the OCI spec.
        let limit = if hc.memory > 0 { hc.memory } else { -1 };
        mem.insert("limit".into(), json!(limit));
        let swap = match (hc.memory, hc.memory_swap) {
            (0, _) => -1,
            (m, 0) => m * 2,
            (_, s) => s,
        };
        mem.insert("swap".into(), json!(swap));
    }
    if req.memory_reservation.is_some() {
        let v = if hc.memory_reservation > 0 {
            hc.memory_reservation
        } else {
            -1
        };
        mem.insert("reservation".into(), json!(v));
    }
    if !mem.is_empty() {
        r.insert("memory".into(), Value::Object(mem));
    }
    let mut cpu = Map::new();
    if req.cpu_shares.is_some() && hc.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(hc.cpu_shares));
    }
    if req.nano_cpus.is_some() {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        let quota = if hc.nano_cpus > 0 {
            hc.nano_cpus * period / 1_000_000_000
        } else {
            -1
        };
        cpu.insert("quota".into(), json!(quota));
    }
    if req.cpuset_cpus.is_some() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if req.cpuset_mems.is_some() {
        cpu.insert("mems".into(), json!(hc.cpuset_mems));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = req.pids_limit {
        r.insert("pids".into(), json!({"limit": if p <= 0 { -1 } else { p }}));
    }
    if req.blkio_weight.is_some_and(|w| w > 0) {
        r.insert("blockIO".into(), json!({"weight": hc.blkio_weight}));
    }
    Value::Object(r)
}

/// Updates the record, then the running container's cgroups.
pub fn update(cs: &ContainerStore, id: &str, req: &UpdateRequest) -> Result<()> {
    let _l = cs.lock(id)?;
    let mut rec = cs.load(id)?;
    let old = rec.host_config.clone();
    merge(&mut rec.host_config, req)?;
    let st = liveness::current(cs, id)?;
    if st.running() && st.status != super::Status::Restarting {
        let v = resources(&rec.host_config, req);
        let res: oci_spec::runtime::LinuxResources =
            serde_json::from_value(v).context("cannot build the new resources")?;
        let cg = cs
            .runtime()
            .cgroup(id)
            .map_err(|e| anyhow!("cannot find the cgroups of {id}: {e}"))?;
        if let Err(first) = cg.apply(&res) {
            // v1 refuses a memory limit above the memory+swap limit (and a
            // swap limit below the memory limit): write them in the other order.
            let mut swap_first = res.clone();
            if let Some(m) = res.memory() {
                let mut only_swap = oci_spec::runtime::LinuxMemory::default();
                only_swap.set_swap(m.swap());
                swap_first.set_memory(Some(only_swap));
                let _ = cg.apply(&swap_first);
            }
            cg.apply(&res).map_err(|_| anyhow!("{first}"))?;
        }
    }
    if rec.host_config != old {
        let b = serde_json::to_vec_pretty(&rec)?;
        atomic_write(&cs.dir(id).join("container.json"), &b)
            .context("cannot write container.json")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_checks_like_docker() {
        let mut hc = HostConfig {
            memory: 64 << 20,
            memory_swap: 128 << 20,
            ..Default::default()
        };
        let e = merge(
            &mut hc,
            &UpdateRequest {
                memory: Some(256 << 20),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("memoryswap"), "{e}");
        merge(
            &mut hc,
            &UpdateRequest {
                memory: Some(256 << 20),
                memory_swap: Some(-1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((hc.memory, hc.memory_swap), (256 << 20, -1));
        assert!(merge(
            &mut hc,
            &UpdateRequest {
                blkio_weight: Some(5),
                ..Default::default()
            }
        )
        .is_err());
        hc.auto_remove = true;
        assert!(merge(
            &mut hc,
            &UpdateRequest {
                restart: Some(RestartPolicy {
                    name: "always".into(),
                    maximum_retry_count: 0
                }),
                ..Default::default()
            }
        )
        .is_err());
    }

    #[test]
    fn resources_only_what_changed() {
        let hc = HostConfig {
            memory: 100 << 20,
            nano_cpus: 500_000_000,
            pids_limit: Some(50),
            ..Default::default()
        };
        let req = UpdateRequest {
            memory: Some(100 << 20),
            nano_cpus: Some(500_000_000),
            ..Default::default()
        };
        let v = resources(&hc, &req);
        assert_eq!(v["memory"]["limit"], json!(100 << 20));
        assert_eq!(v["memory"]["swap"], json!(200 << 20));
        assert_eq!(v["cpu"]["quota"], json!(50_000));
        assert!(v.get("pids").is_none());
        let r: oci_spec::runtime::LinuxResources = serde_json::from_value(v).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(100 << 20));
    }
}
