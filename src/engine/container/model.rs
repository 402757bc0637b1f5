//! What berth stores about a container: `container.json` (set at create,
//! changed only by rename) and `state.json` (changed on every transition).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Docker's `Config` part that berth keeps (image config merged with flags).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    pub hostname: String,
    #[serde(default)]
    pub domainname: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub attach_stderr: bool,
    /// The image name as the user typed it (docker's `Config.Image`).
    pub image: String,
    /// docker's `Config.ExposedPorts` (`{"80/tcp": {}}`): the image's
    /// EXPOSE plus every `-p` container port.
    #[serde(default)]
    pub exposed_ports: BTreeMap<String, BTreeMap<String, String>>,
}

/// docker's `PortBinding` (`HostPort` "" = any free port).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// "no", "on-failure", "always", "unless-stopped".
    pub name: String,
    #[serde(default)]
    pub maximum_retry_count: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// Docker's `HostConfig` part that berth implements.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    pub network_mode: String,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub readonly_rootfs: bool,
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub security_opt: Vec<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// Bytes; 0 = unlimited.
    #[serde(default)]
    pub memory: i64,
    #[serde(default)]
    pub memory_swap: i64,
    #[serde(default)]
    pub memory_reservation: i64,
    #[serde(default)]
    pub nano_cpus: i64,
    #[serde(default)]
    pub cpu_shares: i64,
    #[serde(default)]
    pub cpuset_cpus: String,
    #[serde(default)]
    pub pids_limit: Option<i64>,
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub shm_size: i64,
    #[serde(default)]
    pub tmpfs: BTreeMap<String, String>,
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub group_add: Vec<String>,
    /// `-p`: `"80/tcp"` -> bindings.
    #[serde(default)]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// `-P`.
    #[serde(default)]
    pub publish_all_ports: bool,
    /// `--link name:alias`.
    #[serde(default)]
    pub links: Vec<String>,
    /// Set by `update --cpuset-mems`.
    #[serde(default)]
    pub cpuset_mems: String,
    /// Set by `update --blkio-weight`; 0 = unset.
    #[serde(default)]
    pub blkio_weight: u16,
}

/// `container.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerRecord {
    pub id: String,
    /// Without docker's leading '/'.
    pub name: String,
    pub created: DateTime<Utc>,
    /// Image ID, `sha256:<hex>`.
    pub image: String,
    /// Top layer first.
    pub layers: Vec<String>,
    pub path: String,
    pub args: Vec<String>,
    pub config: RunConfig,
    pub host_config: HostConfig,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

/// `state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: Status,
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default, rename = "OOMKilled")]
    pub oom_killed: bool,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub restart_count: u32,
    /// `stop`/`kill` by a user: no restart (docker's HasBeenManuallyStopped).
    #[serde(default)]
    pub manually_stopped: bool,
    /// The monitor's pid while it runs (liveness is its flock, not this).
    #[serde(default)]
    pub monitor_pid: i32,
}

impl State {
    pub fn running(&self) -> bool {
        matches!(
            self.status,
            Status::Running | Status::Paused | Status::Restarting
        )
    }
}
