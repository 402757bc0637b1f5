use std::fs;
use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::*;

const V1_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
const SELF: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/svc/abc\n1:cpu:/\n0::/\n";

#[test]
fn hybrid_host_is_v1_and_relative_paths_nest_under_our_cgroup() {
    let h = Hierarchy::from_mountinfo(V1_MOUNTINFO).unwrap();
    let rec = h.resolve("box/c1", SELF).unwrap();
    assert_eq!(rec.version, 1);
    assert_eq!(
        rec.dirs["memory"],
        Path::new("/sys/fs/cgroup/memory/svc/abc/box/c1")
    );
    assert_eq!(rec.dirs["pids"], Path::new("/sys/fs/cgroup/pids/box/c1"));
    assert!(!rec.dirs.contains_key("name=systemd"));
    let abs = h.resolve("/abs/c1", SELF).unwrap();
    assert_eq!(
        abs.dirs["memory"],
        Path::new("/sys/fs/cgroup/memory/abs/c1")
    );
    assert!(h.resolve("../escape", SELF).is_err());
    // A v1 join moves the forked child's one thread through `tasks`.
    assert!(rec.procs_files().iter().all(|f| f.ends_with("tasks")));
    assert!(rec
        .procs_files()
        .contains(&Path::new("/sys/fs/cgroup/pids/box/c1/tasks").to_path_buf()));
}

fn fake_v2(root: &Path) {
    for d in ["", "user.slice", "user.slice/me"] {
        fs::create_dir_all(root.join(d)).unwrap();
        fs::write(
            root.join(d).join("cgroup.controllers"),
            "cpuset cpu io memory pids",
        )
        .unwrap();
        fs::write(root.join(d).join("cgroup.subtree_control"), "").unwrap();
    }
}

#[test]
fn v2_paths_controllers_resources_and_cleanup_on_a_fake_tree() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fake_v2(root);
    let mi = format!("30 23 0:26 / {} rw - cgroup2 cgroup2 rw\n", root.display());
    let h = Hierarchy::from_mountinfo(&mi).unwrap();
    assert_eq!(h, Hierarchy::V2(root.to_path_buf()));
    // The caller's cgroup holds the caller: v2 nests beside it, not in it.
    let mut rec = h.resolve("berth/c1", "0::/user.slice/me\n").unwrap();
    let dir = root.join("user.slice/berth/c1");
    assert_eq!(rec.dirs[""], dir);
    // From the root cgroup (exempt from the rule) it nests under the root.
    let top = h.resolve("berth/c1", "0::/\n").unwrap();
    assert_eq!(top.dirs[""], root.join("berth/c1"));
    h.create(&mut rec, |_| Ok::<_, CgroupError>(())).unwrap();
    assert_eq!(
        rec.created,
        vec![root.join("user.slice/berth"), dir.clone()]
    );
    for d in ["", "user.slice"] {
        let s = fs::read_to_string(root.join(d).join("cgroup.subtree_control")).unwrap();
        assert_eq!(s, "+cpuset +cpu +io +memory +pids", "{d}");
    }
    let r: LinuxResources = serde_json::from_value(serde_json::json!({
        "memory": {"limit": 33554432, "reservation": 1048576, "swap": 67108864},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 64},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "devices": [{"allow": false, "access": "rwm"}]
    }))
    .unwrap();
    rec.apply(&r).unwrap();
    let rd = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(rd("memory.max"), "33554432");
    assert_eq!(rd("memory.low"), "1048576");
    assert_eq!(rd("memory.swap.max"), "33554432");
    assert_eq!(rd("cpu.weight"), "39");
    assert_eq!(rd("cpu.max"), "50000 100000");
    assert_eq!(rd("cpuset.cpus"), "0-1");
    assert_eq!(rd("pids.max"), "64");
    assert_eq!(rd("io.weight"), "default 4950");
    assert_eq!(rd("io.max"), "8:0 rbps=1048576");
    assert_eq!(rec.procs_files(), vec![dir.join("cgroup.procs")]);
    // With BFQ loaded its file wins and takes blkio's scale unconverted.
    fs::write(dir.join("io.bfq.weight"), "default 100\n").unwrap();
    let bio: LinuxResources =
        serde_json::from_value(serde_json::json!({"blockIO": {"weight": 500}})).unwrap();
    rec.apply(&bio).unwrap();
    assert_eq!(rd("io.bfq.weight"), "default 500");

    // Freezer, OOM events and stats read the v2 files.
    // The kernel reports the freeze in cgroup.events; set_frozen waits for it.
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    rec.set_frozen(true).unwrap();
    assert_eq!(rd("cgroup.freeze"), "1");
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    assert!(rec.is_frozen());
    fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n",
    )
    .unwrap();
    assert_eq!(rec.oom_kills(), 2);
    fs::write(dir.join("memory.current"), "4096\n").unwrap();
    fs::write(dir.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
    fs::write(dir.join("pids.current"), "3\n").unwrap();
    let s = rec.stats().unwrap();
    assert_eq!(
        (
            s.memory_usage,
            s.memory_limit,
            s.cpu_usage_ns,
            s.pids_current
        ),
        (4096, Some(33554432), 1_500_000, 3)
    );

    // A real cgroupfs removes the control files itself; the fake tree needs help.
    for e in fs::read_dir(&dir).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    fs::write(dir.join("cgroup.procs"), "").unwrap();
    fs::remove_file(dir.join("cgroup.procs")).unwrap();
    rec.destroy().unwrap();
    assert!(!dir.exists());
    assert!(!root.join("user.slice/berth").exists());
    // Never touch what berth did not create.
    assert!(root.join("user.slice/me").exists());
}

/// A creator killed at any point of `create` (kill -9 of a monitor) must
/// leave only directories its record names: the record is stored before
/// the first `mkdir`, and again when a planned directory turned out to be
/// someone else's.
#[test]
fn record_names_every_directory_before_it_exists() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let mut mi = String::new();
    for (i, c) in ["cpu", "memory", "pids"].iter().enumerate() {
        fs::create_dir_all(root.join(c).join("svc")).unwrap();
        mi += &format!(
            "{} 23 0:{i} / {} rw - cgroup cgroup rw,{c}\n",
            40 + i,
            root.join(c).display()
        );
    }
    let h = Hierarchy::from_mountinfo(&mi).unwrap();
    let own = "3:pids:/svc\n2:memory:/svc\n1:cpu:/svc\n";

    let mut rec = h.resolve("box/c1", own).unwrap();
    let mut stored: Vec<CgroupRecord> = vec![];
    h.create(&mut rec, |r| {
        assert!(
            r.created.iter().all(|d| !d.exists()),
            "stored after a mkdir: {r:?}"
        );
        stored.push(r.clone());
        Ok::<_, CgroupError>(())
    })
    .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0], rec);
    // Parents first (a delete removes them in reverse).
    let want: Vec<_> = ["cpu", "memory", "pids"]
        .iter()
        .flat_map(|c| {
            [
                root.join(c).join("svc/box"),
                root.join(c).join("svc/box/c1"),
            ]
        })
        .collect();
    assert_eq!(rec.created, want);
    assert!(want.iter().all(|d| d.is_dir()));

    // A record that cannot be stored: nothing is made.
    let mut rec2 = h.resolve("box/c2", own).unwrap();
    let e = h.create(&mut rec2, |_| Err(CgroupError::Invalid("disk full".into())));
    assert!(e.is_err());
    assert!(rec2.unique_dirs().iter().all(|d| !d.exists()));

    // A planned directory someone else makes before our mkdir is not ours:
    // the record is stored again without it.
    let mut rec3 = h.resolve("box/c3", own).unwrap();
    let theirs = root.join("memory/svc/box/c3");
    let mut stored = vec![];
    h.create(&mut rec3, |r| {
        if stored.is_empty() {
            fs::create_dir(&theirs).unwrap();
        }
        stored.push(r.clone());
        Ok::<_, CgroupError>(())
    })
    .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored[0].created.contains(&theirs));
    assert_eq!(stored[1], rec3);
    assert!(!rec3.created.contains(&theirs));
    assert_eq!(rec3.created.len(), 2);
}

#[test]
fn conversions_match_runc() {
    assert_eq!(resources::shares_to_weight(2), 1);
    assert_eq!(resources::shares_to_weight(262144), 10000);
    assert_eq!(resources::shares_to_weight(1024), 39);
    assert_eq!(resources::blkio_to_io_weight(10), 1);
    assert_eq!(resources::blkio_to_io_weight(1000), 10000);
}

/// The eBPF device filter on the real kernel: this host's cgroup2 mount
/// (hybrid hosts have one beside v1) enforces it even with v1 devices.
#[test]
fn v2_device_filter_is_enforced_by_the_kernel() {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(mnt) = mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        post.starts_with("cgroup2 ")
            .then(|| pre.split(' ').nth(4).map(str::to_string))?
    }) else {
        eprintln!("skipped: no cgroup2 mount");
        return;
    };
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let dir = Path::new(&mnt)
        .join(own)
        .join(format!("berth-devtest-{}", std::process::id()));
    fs::create_dir(&dir).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = fs::remove_dir(&self.0);
        }
    }
    let _rm = Rm(dir.clone());
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}
        ]))
        .unwrap();
    devices_v2::attach(&dir, &rules).unwrap();
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").to_str().unwrap()).unwrap();
    // SAFETY: the child only makes raw syscalls and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(100);
            }
            let errno = || *libc::__errno_location();
            let mut code = 0;
            if libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) < 0 {
                code |= 1;
            }
            if libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY) < 0 {
                code |= 2;
            }
            if libc::open(c"/dev/zero".as_ptr(), libc::O_WRONLY) >= 0 || errno() != libc::EPERM {
                code |= 4;
            }
            if libc::open(c"/dev/full".as_ptr(), libc::O_RDONLY) >= 0 || errno() != libc::EPERM {
                code |= 8;
            }
            code
        };
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(libc::WEXITSTATUS(st), 0, "bitmask of failed checks");
}

/// A fifo in linux.devices gets no devices-cgroup rule: the controller
/// refuses type "p" (runtime-tools' linux_devices config has one).
#[test]
fn fifo_devices_get_no_cgroup_rule() {
    let r: LinuxResources =
        serde_json::from_str(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#).unwrap();
    let devs: Vec<oci_spec::runtime::LinuxDevice> = serde_json::from_str(
        r#"[{"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0},
            {"path": "/dev/blk", "type": "b", "major": 7, "minor": 200}]"#,
    )
    .unwrap();
    let rules: Vec<String> = resources::with_default_devices(&r, &devs)
        .devices()
        .iter()
        .flatten()
        .map(resources::device_rule)
        .collect();
    assert!(rules.iter().all(|r| !r.starts_with('p')), "{rules:?}");
    assert!(rules.contains(&"b 7:200 rwm".to_string()), "{rules:?}");
}
