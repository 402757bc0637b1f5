//! runc's rule for `linux.sysctl`: a key may be set only when the kernel
//! namespace it belongs to is the container's own, so a container can never
//! change the host's kernel settings.

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

/// The IPC-namespaced keys outside `fs.mqueue.` (ipc/ipc_sysctl.c).
pub const IPC_KEYS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Whether `t` is a namespace of the container's own: created (no path),
/// or joined by a path that is not the caller's (the host's) namespace.
fn own_namespace(nss: &[LinuxNamespace], t: LinuxNamespaceType, proc_name: &str) -> bool {
    let Some(ns) = nss.iter().find(|n| n.typ() == t) else {
        return false;
    };
    let Some(path) = ns.path() else {
        return true;
    };
    let ino = |p: &std::path::Path| {
        std::fs::metadata(p).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        })
    };
    match (
        ino(path),
        ino(std::path::Path::new(&format!("/proc/self/ns/{proc_name}"))),
    ) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

/// Ok, or runc's message naming the key and why it is refused.
pub fn check(key: &str, nss: &[LinuxNamespace]) -> Result<(), String> {
    if IPC_KEYS.contains(&key) || key.starts_with("fs.mqueue.") {
        if own_namespace(nss, LinuxNamespaceType::Ipc, "ipc") {
            return Ok(());
        }
        return Err(format!(
            "sysctl {key:?} is not allowed as it conflicts with the OCI \"ipc\" namespace"
        ));
    }
    if key.starts_with("net.") {
        if own_namespace(nss, LinuxNamespaceType::Network, "net") {
            return Ok(());
        }
        return Err(format!(
            "sysctl {key:?} not allowed in host network namespace"
        ));
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        if own_namespace(nss, LinuxNamespaceType::Uts, "uts") {
            return Ok(());
        }
        return Err(format!(
            "sysctl {key:?} is not allowed as it conflicts with the OCI \"uts\" namespace"
        ));
    }
    Err(format!(
        "sysctl {key:?} is not in a separate kernel namespace"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespaceBuilder;

    fn ns(t: LinuxNamespaceType) -> LinuxNamespace {
        LinuxNamespaceBuilder::default().typ(t).build().unwrap()
    }

    #[test]
    fn only_keys_of_the_containers_own_namespaces() {
        let all = [
            ns(LinuxNamespaceType::Ipc),
            ns(LinuxNamespaceType::Network),
            ns(LinuxNamespaceType::Uts),
        ];
        for k in [
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "net.ipv4.ip_forward",
            "kernel.domainname",
        ] {
            assert!(check(k, &all).is_ok(), "{k}");
            assert!(check(k, &[]).is_err(), "{k}");
        }
        assert!(check("kernel.panic", &all)
            .unwrap_err()
            .contains("not in a separate kernel namespace"));
        assert!(check("vm.swappiness", &all).is_err());
        // Joining the caller's own network namespace is the host's.
        let host_net = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path("/proc/self/ns/net")
            .build()
            .unwrap();
        assert!(check("net.ipv4.ip_forward", &[host_net])
            .unwrap_err()
            .contains("host network namespace"));
    }
}
