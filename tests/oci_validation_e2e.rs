//! The OCI runtime-tools validation suite's programs, rebuilt against
//! `berth runtime`: one test per program of runtime-tools' `validation/`
//! directory, named after it, driving the runtime the way its
//! `validation/util` does (a `RUNTIME` wrapper, `create --bundle [--pid-file]
//! ID`, `start`, `state`, `kill ID SIG`, `delete`, bundles whose rootfs is
//! the bundle directory, runtime-tools' default config) and asserting what
//! the program asserts, with TAP output. The checks its `runtimetest`
//! binary makes inside the container are in oci_validation/inside.rs.
//!
//! Debian packages runtime-tools' libraries but not its `validation/`
//! programs nor `runtimetest`, so they cannot be built here; see
//! docs/architecture.md "OCI runtime validation". Programs this host cannot
//! run are listed in EXCLUDED with the reason.

mod common;
mod oci_validation;

/// Programs of runtime-tools' validation/ not run here, and why.
pub const EXCLUDED: &[(&str, &str)] = &[
    ("linux_cgroups_blkio (upstream's reading)", "runtime-tools reads blkio.weight and blkio.leaf_weight; this kernel has BFQ's blkio.bfq.weight and no leaf weights (CFQ is gone): the rebuilt program checks the weight there and that leafWeight is an error"),
    ("linux_cgroups_relative_blkio", "as linux_cgroups_blkio"),
    ("linux_cgroups_hugetlb", "no hugetlb cgroup hierarchy is mounted on this host"),
    ("linux_cgroups_relative_hugetlb", "as linux_cgroups_hugetlb"),
    ("linux_cgroups_network", "no net_cls / net_prio cgroup hierarchy is mounted on this host"),
    ("linux_cgroups_relative_network", "as linux_cgroups_network"),
    ("linux_process_apparmor_profile", "no AppArmor on this host; berth refuses process.apparmorProfile with an error"),
    ("linux_mount_label", "no SELinux on this host; berth refuses process.selinuxLabel / linux.mountLabel"),
    ("linux_ns_itype (mount)", "berth requires a mount namespace, new or joined by path (setting the rootfs up in the runtime's own would pivot the host's root); runc refuses this config too, for its maskedPaths"),
];

/// The exclusions are written down, each with its reason.
#[test]
fn exclusions_are_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/architecture.md"))
        .unwrap();
    for (name, why) in EXCLUDED {
        assert!(!why.is_empty());
        println!("ok - # SKIP {name}: {why}");
        let key = name.split(' ').next().unwrap();
        assert!(
            doc.contains(key),
            "docs/architecture.md does not mention the exclusion {key}"
        );
    }
}
