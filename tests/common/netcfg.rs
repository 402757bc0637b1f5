//! A private network configuration for every `Berth` runner: its own nft
//! table, default bridge device, default-bridge subnet and address pool, so
//! tests running at the same time (in other processes too) never share a
//! host-global name or pick the same subnet.
//!
//! A slot N (0..250) is claimed with an `flock` on
//! `/tmp/berth-test-net/slot-N.lock`, held while the runner lives. Slot N
//! owns 10.78.N.0/24 (default bridge) and 10.79.N.0/24 (four /26 pools for
//! networks created without `--subnet`). Tests that pass `--subnet` use
//! 10.77.0.0/16 slices of their own. For IPv6, slot N owns the ULA /48
//! fdb7:e57:N::/48 (never the host's fd00::/64): its first /56 is the v6
//! pool (`default-address-pools`, /64s) for `--ipv6` networks without a v6
//! `--subnet`, and [`NetCfg::subnet6`] gives /64s of fdb7:e57:N:100::/56 for
//! tests that pass one.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub struct NetCfg {
    _lock: File,
    pub slot: u32,
    pub table: String,
    pub bridge: String,
    pub config: PathBuf,
    /// The cgroup v2 directory berth attaches its redirect programs to.
    pub cgroup: testkit::cgroup2::TestCgroup,
}

fn rand_hex() -> String {
    let mut b = [0u8; 3];
    let f = File::open("/dev/urandom").unwrap();
    use std::io::Read;
    (&f).read_exact(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl NetCfg {
    /// How many published addresses berth's redirect programs hold for
    /// this runner's table (`None`: no programs attached).
    pub fn redirects(&self) -> Option<usize> {
        let mode = netns::redirect::PortRedirect::Cgroup(self.cgroup.dir.clone());
        netns::redirect::status(&mode, &self.table).unwrap()
    }

    /// Claims a slot and writes the berth config file into `dir`.
    pub fn new(dir: &Path) -> NetCfg {
        let locks = Path::new("/tmp/berth-test-net");
        std::fs::create_dir_all(locks).unwrap();
        for slot in 0..250u32 {
            let f = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(locks.join(format!("slot-{slot}.lock")))
                .unwrap();
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue;
            }
            let h = rand_hex();
            let table = format!("bt_{h}");
            let bridge = format!("bb{h}");
            let config = dir.join("berth-config.json");
            // berth's socket redirect programs go to the slot's own cgroup,
            // never to the host's root one; tests that want them join it.
            let cgroup = testkit::cgroup2::TestCgroup::new(&format!("berth-test-slot-{slot}"));
            let json = serde_json::json!({
                "port-redirect": cgroup.dir,
                "nft-table": table,
                "bridge": bridge,
                "bip": format!("10.78.{slot}.1/24"),
                "default-address-pools": [
                    {"base": format!("10.79.{slot}.0/24"), "size": 26},
                    {"base": format!("fdb7:e57:{slot:x}::/56"), "size": 64},
                ],
            });
            std::fs::write(&config, json.to_string()).unwrap();
            return NetCfg {
                _lock: f,
                slot,
                table,
                bridge,
                config,
                cgroup,
            };
        }
        panic!("no free test network slot in /tmp/berth-test-net");
    }

    /// The slot's i-th IPv6 /64 for an explicit `--subnet`.
    pub fn subnet6(&self, i: u8) -> String {
        format!("fdb7:e57:{:x}:1{i:02x}::/64", self.slot)
    }

    /// The slot's IPv6 pool (what `--ipv6` without a v6 subnet draws from).
    pub fn pool6(&self) -> String {
        format!("fdb7:e57:{:x}::/56", self.slot)
    }

    /// Removes every bridge recorded under `root/networks` and the nft
    /// table (what `rm -f` of the containers does not remove: networks).
    pub fn teardown(&self, root: &Path) {
        let mut bridges = vec![self.bridge.clone()];
        if let Ok(rd) = std::fs::read_dir(root.join("networks")) {
            for e in rd.flatten() {
                if !e.file_name().to_string_lossy().ends_with(".json") {
                    continue;
                }
                if let Ok(v) = std::fs::read(e.path())
                    .map_err(|_| ())
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|_| ()))
                {
                    if let Some(b) = v["bridge"].as_str() {
                        bridges.push(b.to_string());
                    }
                }
            }
        }
        bridges.sort();
        bridges.dedup();
        for b in bridges {
            if Path::new("/sys/class/net").join(&b).exists() {
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", &b])
                    .status();
            }
        }
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
