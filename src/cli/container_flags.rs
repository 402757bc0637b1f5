//! Turning `create`/`run` flags into the container's config, with docker's
//! parsing rules and error texts.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};

use super::container_args::CreateFlags;
use crate::engine::container::model::{RestartPolicy, Ulimit};
use crate::engine::container::{HostConfig, RunConfig};

/// docker's `RAMInBytes`: a number with an optional b/k/m/g/t/p suffix (binary).
pub fn ram_in_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|x| !x.is_empty() && x.chars().last().is_some_and(|c| c.is_ascii_alphabetic()))
        .unwrap_or(&t)
        .to_string();
    let (num, mult): (&str, i64) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (&t[..], 1),
    };
    let v: f64 = num.parse().map_err(|_| anyhow!("invalid size: '{s}'"))?;
    if v < 0.0 {
        bail!("invalid size: '{s}'");
    }
    Ok((v * mult as f64) as i64)
}

/// A `--memory-swap` value: bytes, or -1 for unlimited swap.
pub(crate) fn swap_in_bytes(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    ram_in_bytes(s)
}

pub(crate) fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let (name, n) = match s.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let max = match n {
        Some(n) => n.parse::<u32>().map_err(|_| {
            anyhow!("invalid restart policy format: maximum retry count must be an integer")
        })?,
        None => 0,
    };
    match name {
        "" | "no" => {
            if n.is_some() {
                bail!("invalid restart policy format: maximum retry count cannot be used with restart policy 'no'");
            }
            Ok(RestartPolicy { name: "no".into(), maximum_retry_count: 0 })
        }
        "always" | "unless-stopped" => {
            if n.is_some() {
                bail!("invalid restart policy format: maximum retry count cannot be used with restart policy '{name}'");
            }
            Ok(RestartPolicy { name: name.into(), maximum_retry_count: 0 })
        }
        "on-failure" => Ok(RestartPolicy { name: name.into(), maximum_retry_count: max }),
        _ => bail!("invalid restart policy format: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
    }
}

fn parse_ulimit(s: &str) -> Result<Ulimit> {
    let (name, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("invalid ulimit argument: {s}"))?;
    let (soft, hard) = match v.split_once(':') {
        Some((a, b)) => (a, b),
        None => (v, v),
    };
    let p = |x: &str| -> Result<u64> {
        if x == "-1" || x == "unlimited" {
            return Ok(u64::MAX);
        }
        x.parse()
            .map_err(|_| anyhow!("invalid ulimit argument: {s}"))
    };
    let (soft, hard) = (p(soft)?, p(hard)?);
    if soft > hard {
        bail!("invalid ulimit argument: {s}: soft limit must be less than or equal to hard limit");
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `--env-file`: `KEY=VALUE` lines; a bare `KEY` takes the caller's value.
pub fn read_env_file(path: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("open {path}: no such file or directory"))?;
    let mut out = Vec::new();
    for l in text.lines() {
        let l = l.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.contains('=') {
            out.push(l.to_string());
        } else if let Ok(v) = std::env::var(l.trim_end()) {
            out.push(format!("{}={v}", l.trim_end()));
        }
    }
    Ok(out)
}

/// `-e KEY` without a value takes the caller's value (or is dropped).
fn env_flag(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

fn kv_map(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for s in items {
        match s.split_once('=') {
            Some((k, v)) => m.insert(k.to_string(), v.to_string()),
            None if what == "label" => m.insert(s.to_string(), String::new()),
            None => bail!("invalid argument \"{s}\" for \"--{what}\" flag: {what} must be in the format KEY=VALUE"),
        };
    }
    Ok(m)
}

/// The container's config and host config from the flags.
pub fn to_config(f: &CreateFlags) -> Result<(RunConfig, HostConfig)> {
    let mut env = Vec::new();
    for p in &f.env_file {
        env.extend(read_env_file(p)?);
    }
    env.extend(f.env.iter().filter_map(|e| env_flag(e)));
    let restart = parse_restart(&f.restart)?;
    if f.rm && restart.name != "no" {
        bail!("Conflicting options: --restart and --rm");
    }
    if f.hostname.is_some() && f.network.iter().any(|n| n == "host") {
        bail!("Conflicting options: hostname and the network mode");
    }
    let mut tmpfs = BTreeMap::new();
    for t in &f.tmpfs {
        let (d, o) = t.split_once(':').unwrap_or((t.as_str(), ""));
        if !d.starts_with('/') {
            bail!("invalid mount path: '{d}' mount path must be absolute");
        }
        tmpfs.insert(d.to_string(), o.to_string());
    }
    super::ctr_sysctl::validate(&f.sysctl)?;
    for h in &f.add_host {
        // docker 25+ also takes `host=ip`.
        if !h.contains(':') && !h.contains('=') {
            bail!("invalid argument \"{h}\" for \"--add-host\" flag: bad format for add-host: \"{h}\"");
        }
    }
    let memory = f
        .memory
        .as_deref()
        .map(ram_in_bytes)
        .transpose()?
        .unwrap_or(0);
    if memory > 0 && memory < 6 * 1024 * 1024 {
        bail!("Error response from daemon: Minimum memory limit allowed is 6MB");
    }
    let memory_swap = f
        .memory_swap
        .as_deref()
        .map(swap_in_bytes)
        .transpose()?
        .unwrap_or(0);
    if memory_swap > 0 && memory == 0 {
        bail!("Error response from daemon: You should always set the Memory limit when using Memoryswap limit");
    }
    if memory_swap > 0 && memory_swap < memory {
        bail!("Error response from daemon: Minimum memoryswap limit should be larger than memory limit, see usage");
    }
    let nano_cpus = match f.cpus {
        Some(c) if c < 0.0 => {
            bail!("Error response from daemon: Range of CPUs is from 0.01 to the number of CPUs")
        }
        Some(c) => (c * 1e9) as i64,
        None => 0,
    };
    super::ctr_cpuset::check(f.cpuset_cpus.as_deref().unwrap_or(""), nano_cpus)?;
    let ulimits = f
        .ulimit
        .iter()
        .map(|u| parse_ulimit(u))
        .collect::<Result<Vec<_>>>()?;
    let cfg = RunConfig {
        hostname: f.hostname.clone().unwrap_or_default(),
        user: f.user.clone().unwrap_or_default(),
        env,
        working_dir: f.workdir.clone().unwrap_or_default(),
        labels: kv_map(&f.label, "label")?,
        stop_signal: f.stop_signal.clone(),
        stop_timeout: f.stop_timeout,
        tty: f.tty,
        open_stdin: f.interactive,
        attach_stdin: f.interactive,
        image: f.image.clone(),
        ..Default::default()
    };
    if let Some(s) = &f.stop_signal {
        crate::engine::container::ops::parse_signal(s)?;
    }
    let hc = HostConfig {
        network_mode: super::net_flags::network_mode(&f.network),
        restart_policy: restart,
        auto_remove: f.rm,
        privileged: f.privileged,
        readonly_rootfs: f.read_only,
        cap_add: f.cap_add.clone(),
        cap_drop: f.cap_drop.clone(),
        security_opt: f.security_opt.clone(),
        dns: f.dns.clone(),
        dns_search: f.dns_search.clone(),
        dns_options: f.dns_option.clone(),
        extra_hosts: f
            .add_host
            .iter()
            .map(|h| match h.split_once('=') {
                Some((n, ip)) if !h.contains(':') || n.len() < h.find(':').unwrap_or(0) => {
                    format!("{n}:{ip}")
                }
                _ => h.clone(),
            })
            .collect(),
        memory,
        memory_swap,
        memory_reservation: f
            .memory_reservation
            .as_deref()
            .map(ram_in_bytes)
            .transpose()?
            .unwrap_or(0),
        nano_cpus,
        cpu_shares: f.cpu_shares.unwrap_or(0),
        cpuset_cpus: f.cpuset_cpus.clone().unwrap_or_default(),
        pids_limit: f.pids_limit,
        ulimits,
        sysctls: kv_map(&f.sysctl, "sysctl")?,
        devices: f.device.clone(),
        shm_size: f
            .shm_size
            .as_deref()
            .map(ram_in_bytes)
            .transpose()?
            .unwrap_or(0),
        tmpfs,
        init: f.init,
        group_add: f.group_add.clone(),
        port_bindings: Default::default(),
        publish_all_ports: f.publish_all,
        links: f.link.clone(),
        ..Default::default()
    };
    // Validate what only fails at start, so `create` reports it.
    crate::engine::container::spec::capabilities(hc.privileged, &hc.cap_add, &hc.cap_drop)?;
    Ok((cfg, hc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_policies() {
        assert_eq!(ram_in_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("512k").unwrap(), 512 << 10);
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert_eq!(ram_in_bytes("10mb").unwrap(), 10 << 20);
        assert!(ram_in_bytes("x").is_err());
        assert_eq!(
            parse_restart("on-failure:2").unwrap().maximum_retry_count,
            2
        );
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("always:3").is_err());
        let u = parse_ulimit("nofile=100:200").unwrap();
        assert_eq!((u.soft, u.hard), (100, 200));
        assert!(parse_ulimit("nofile=300:200").is_err());
    }
}
