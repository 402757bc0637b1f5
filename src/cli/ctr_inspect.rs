//! `inspect` of containers in docker's JSON shape; `inspect` resolves
//! containers before images, as docker does.

use anyhow::Result;
use serde_json::{json, Value};

use super::{Ctx, Reported};
use crate::engine::container::logs::rfc3339_nano;
use crate::engine::container::model::{ContainerRecord, State};
use crate::engine::container::{liveness, ContainerStore};

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub fn to_json(cs: &ContainerStore, r: &ContainerRecord, s: &State) -> Value {
    let dir = cs.dir(&r.id);
    let lower: Vec<String> = r
        .layers
        .iter()
        .map(|h| {
            cs.paths
                .layers_dir()
                .join(h)
                .join("diff")
                .display()
                .to_string()
        })
        .collect();
    let t = |x: &Option<chrono::DateTime<chrono::Utc>>| {
        x.as_ref()
            .map(rfc3339_nano)
            .unwrap_or_else(|| ZERO_TIME.into())
    };
    let hc = &r.host_config;
    let ulimits: Vec<Value> = hc
        .ulimits
        .iter()
        .map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard}))
        .collect();
    let host_config = json!({
        "NetworkMode": hc.network_mode,
        "RestartPolicy": {"Name": hc.restart_policy.name, "MaximumRetryCount": hc.restart_policy.maximum_retry_count},
        "AutoRemove": hc.auto_remove,
        "Privileged": hc.privileged,
        "ReadonlyRootfs": hc.readonly_rootfs,
        "CapAdd": hc.cap_add,
        "CapDrop": hc.cap_drop,
        "SecurityOpt": hc.security_opt,
        "Dns": hc.dns,
        "DnsSearch": hc.dns_search,
        "DnsOptions": hc.dns_options,
        "ExtraHosts": hc.extra_hosts,
        "Memory": hc.memory,
        "MemorySwap": hc.memory_swap,
        "MemoryReservation": hc.memory_reservation,
        "NanoCpus": hc.nano_cpus,
        "CpuShares": hc.cpu_shares,
        "CpusetCpus": hc.cpuset_cpus,
        "CpusetMems": hc.cpuset_mems,
        "BlkioWeight": hc.blkio_weight,
        "PidsLimit": hc.pids_limit,
        "Ulimits": ulimits,
        "Sysctls": hc.sysctls,
        "ShmSize": if hc.shm_size > 0 { hc.shm_size } else { 64 << 20 },
        "Tmpfs": hc.tmpfs,
        "Init": hc.init,
        "GroupAdd": hc.group_add,
        "PortBindings": hc.port_bindings,
        "PublishAllPorts": hc.publish_all_ports,
        "Links": if hc.links.is_empty() { Value::Null } else { json!(hc.links) },
        "LogConfig": {"Type": "json-file", "Config": {}},
    });
    let (mounts, binds, mount_cfg, volumes_from, volumes) =
        crate::engine::volume::mounts::inspect(cs, &r.id);
    let mut host_config = host_config;
    host_config["Binds"] = binds;
    if !mount_cfg.is_null() {
        host_config["Mounts"] = mount_cfg;
    }
    host_config["VolumesFrom"] = volumes_from;
    let config = json!({
        "Hostname": r.config.hostname,
        "Domainname": r.config.domainname,
        "User": r.config.user,
        "AttachStdin": r.config.attach_stdin,
        "AttachStdout": r.config.attach_stdout,
        "AttachStderr": r.config.attach_stderr,
        "Tty": r.config.tty,
        "OpenStdin": r.config.open_stdin,
        "StdinOnce": false,
        "Env": r.config.env,
        "Cmd": r.config.cmd,
        "Image": r.config.image,
        "WorkingDir": r.config.working_dir,
        "Entrypoint": if r.config.entrypoint.is_empty() { Value::Null } else { json!(r.config.entrypoint) },
        "Labels": r.config.labels,
        "StopSignal": r.config.stop_signal,
        "StopTimeout": r.config.stop_timeout,
        "ExposedPorts": if r.config.exposed_ports.is_empty() { Value::Null } else { json!(r.config.exposed_ports) },
    });
    let mut config = config;
    config["Volumes"] = volumes;
    json!({
        "Id": r.id,
        "Created": rfc3339_nano(&r.created),
        "Path": r.path,
        "Args": r.args,
        "State": {
            "Status": s.status.as_str(),
            "Running": s.running() && s.status != crate::engine::container::Status::Restarting,
            "Paused": s.status == crate::engine::container::Status::Paused,
            "Restarting": s.status == crate::engine::container::Status::Restarting,
            "OOMKilled": s.oom_killed,
            "Dead": s.status == crate::engine::container::Status::Dead,
            "Pid": s.pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": t(&s.started_at),
            "FinishedAt": t(&s.finished_at),
        },
        "Image": r.image,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": cs.log_path(&r.id),
        "Name": format!("/{}", r.name),
        "RestartCount": s.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "HostConfig": host_config,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "LowerDir": lower.join(":"),
                "UpperDir": dir.join("upper"),
                "MergedDir": dir.join("merged"),
                "WorkDir": dir.join("work"),
            }
        },
        "Mounts": mounts,
        "Config": config,
        "NetworkSettings": crate::engine::network::inspect::settings(cs, r),
    })
}

/// `containers_only`: `container inspect`; otherwise names that are not
/// containers fall through to images.
pub fn inspect(
    ctx: &Ctx,
    format: Option<String>,
    names: Vec<String>,
    containers_only: bool,
) -> Result<()> {
    let cs = ContainerStore::new(ctx.paths());
    let mut items = Vec::new();
    let mut rest = Vec::new();
    for n in &names {
        match cs.resolve(n) {
            Ok(id) => {
                let r = cs.load(&id)?;
                let s = liveness::current(&cs, &id)?;
                items.push(to_json(&cs, &r, &s));
            }
            Err(_) => rest.push(n.clone()),
        }
    }
    if !rest.is_empty() && !containers_only && items.is_empty() {
        if let Some(r) = super::volume::inspect_if_volumes(ctx, format.as_deref(), &names) {
            return r;
        }
        return super::images::inspect(ctx, format, names);
    }
    if !items.is_empty() {
        print!(
            "{}",
            super::format::render_inspect(format.as_deref(), &items)?
        );
    }
    if !rest.is_empty() {
        for n in &rest {
            eprintln!(
                "Error: No such {}: {n}",
                if containers_only {
                    "container"
                } else {
                    "object"
                }
            );
        }
        return Err(Reported { code: 1 }.into());
    }
    Ok(())
}
