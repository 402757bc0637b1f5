//! cgroup v2 directories of a test's own, for what berth attaches to a
//! cgroup (its socket redirect programs): tests never attach anything to
//! the host's root cgroup.

use std::path::PathBuf;

/// The first cgroup2 mount (`/sys/fs/cgroup/unified` on this hybrid host).
pub fn root() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split(' ').next() == Some("cgroup2"))
            .then(|| left.split(' ').nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// A directory under the cgroup2 root, removed on drop (which detaches
/// every program attached to it). Needs no process inside by then:
/// [`TestCgroup::join`] guards leave first.
pub struct TestCgroup {
    pub dir: PathBuf,
}

impl TestCgroup {
    pub fn new(name: &str) -> TestCgroup {
        let dir = root().expect("a cgroup2 mount").join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TestCgroup { dir }
    }

    /// Moves this test process into the cgroup until the guard drops, so
    /// its own connections meet the programs attached there.
    pub fn join(&self) -> Joined {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let rel = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a cgroup v2 line in /proc/self/cgroup");
        let back = root()
            .expect("a cgroup2 mount")
            .join(rel.trim_start_matches('/'));
        std::fs::write(
            self.dir.join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .unwrap_or_else(|e| panic!("join {}: {e}", self.dir.display()));
        Joined { back }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

pub struct Joined {
    back: PathBuf,
}

impl Drop for Joined {
    fn drop(&mut self) {
        let _ = std::fs::write(
            self.back.join("cgroup.procs"),
            std::process::id().to_string(),
        );
    }
}
