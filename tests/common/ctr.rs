//! Container test support: a private root with an image pulled into it,
//! and the reaping that this host's non-reaping pid 1 makes necessary.

use std::path::Path;
use std::time::{Duration, Instant};

use super::berth::{mounts_under, Berth};
use super::image::ImageBuilder;
use super::registry::Registry;

/// A private root with an image pulled into it; Drop removes every
/// container (`rm -f`), reaps the monitors (this process is their
/// subreaper: the machine's pid 1 reaps nothing) and unmounts the root.
pub struct Env {
    pub b: Berth,
    pub image: String,
    pub reg: Registry,
}

pub fn set_subreaper() {
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Our own children (this process is their subreaper) whose name is one
/// of `names`, with their state letter (`Z` for a zombie).
pub fn own_children_named(names: &[&str]) -> Vec<(i32, char)> {
    let me = std::process::id().to_string();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = &stat[stat.find('(').unwrap() + 1..close];
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        if names.contains(&comm) && f[1] == me {
            v.push((pid, f[0].chars().next().unwrap_or('?')));
        }
    }
    v
}

/// Reaps our zombie children named berth-monitor or berth-dns (the name
/// resolver, which exits by itself about a second after the last container
/// on a user-defined network) until none is alive; never a `Command` child
/// of another test thread: those are named berth.
pub fn reap_monitors(wait: Duration) {
    let until = Instant::now() + wait;
    loop {
        let mut live = 0;
        for (pid, state) in own_children_named(&["berth-monitor", "berth-dns"]) {
            if state == 'Z' {
                unsafe {
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            } else {
                live += 1;
            }
        }
        if live == 0 || Instant::now() > until {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Env {
    pub fn with(builder: ImageBuilder) -> Env {
        set_subreaper();
        let reg = Registry::plain();
        reg.push("t/img", "1", &builder.build());
        let b = Berth::new();
        let image = reg.reference("t/img", "1");
        b.ok(&["pull", "-q", &image]);
        Env { b, image, reg }
    }

    pub fn new() -> Env {
        Env::with(ImageBuilder::new())
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.b.cmd(args)
    }

    pub fn inspect(&self, c: &str, f: &str) -> String {
        self.b.ok(&["inspect", "--format", f, c]).trim().to_string()
    }

    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(60);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let ids = self.b.cmd(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.b.cmd(&["rm", "-f", id]);
        }
        reap_monitors(Duration::from_secs(10));
    }
}

pub fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_clean(root: &Path) {
    let m = mounts_under(root);
    assert!(m.is_empty(), "mounts left under the root: {m:?}");
}
