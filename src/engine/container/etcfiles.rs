//! `hosts`, `hostname` and `resolv.conf` written into `containers/<id>/`
//! and bind-mounted over the image's files.

use std::path::Path;

use anyhow::{Context, Result};

use super::model::{ContainerRecord, HostConfig};
use crate::engine::fsutil::write_new_or_replace;

/// The host's resolv.conf with a container's `--dns`, `--dns-search` and
/// `--dns-option` applied: what docker writes on the default bridge, and
/// the base of a user network's file.
pub(crate) struct Resolv {
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl Resolv {
    pub(crate) fn for_container(hc: &HostConfig) -> Resolv {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut r = Resolv {
            nameservers: Vec::new(),
            search: Vec::new(),
            options: Vec::new(),
        };
        for l in host.lines() {
            let mut f = l.split_whitespace();
            match f.next() {
                // A loopback resolver of the host is unreachable from another
                // network namespace (docker drops it too).
                Some("nameserver") => {
                    if let Some(a) = f.next() {
                        if hc.network_mode == "host" || !(a.starts_with("127.") || a == "::1") {
                            r.nameservers.push(a.to_string());
                        }
                    }
                }
                Some("search") | Some("domain") => r.search.extend(f.map(str::to_string)),
                Some("options") => r.options.extend(f.map(str::to_string)),
                _ => {}
            }
        }
        if !hc.dns.is_empty() {
            r.nameservers = hc.dns.clone();
        }
        if !hc.dns_search.is_empty() {
            r.search = hc
                .dns_search
                .iter()
                .filter(|s| *s != ".")
                .cloned()
                .collect();
        }
        if !hc.dns_options.is_empty() {
            r.options = hc.dns_options.clone();
        }
        r
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for n in &self.nameservers {
            out.push_str(&format!("nameserver {n}\n"));
        }
        if !self.search.is_empty() {
            out.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

fn resolv_conf(rec: &ContainerRecord) -> String {
    Resolv::for_container(&rec.host_config).render()
}

fn hosts(rec: &ContainerRecord) -> String {
    if rec.host_config.network_mode == "host" {
        let mut h = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        for e in &rec.host_config.extra_hosts {
            if let Some((name, ip)) = e.split_once(':') {
                h.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        return h;
    }
    let mut h = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for e in &rec.host_config.extra_hosts {
        // name:ip, where ip may itself contain ':' (IPv6).
        if let Some((name, ip)) = e.split_once(':') {
            h.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    h
}

/// (Re)writes the three files; returns their paths in mount order.
pub fn write_all(rec: &ContainerRecord, dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let hostname = if rec.host_config.network_mode == "host" {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    } else {
        rec.config.hostname.clone()
    };
    let files = [
        ("/etc/resolv.conf", "resolv.conf", resolv_conf(rec)),
        ("/etc/hostname", "hostname", format!("{hostname}\n")),
        ("/etc/hosts", "hosts", hosts(rec)),
    ];
    let mut out = Vec::new();
    for (target, name, content) in files {
        let p = dir.join(name);
        write_new_or_replace(&p, content.as_bytes())
            .with_context(|| format!("cannot write {}", p.display()))?;
        out.push((target.to_string(), p));
    }
    Ok(out)
}
