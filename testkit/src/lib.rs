//! Fixtures shared by the tests of every crate in the workspace.
//!
//! Nothing here uses berth's own code: images are made offline from
//! Debian's busybox-static, registries are the real CNCF distribution
//! program, and seeding uses a tiny HTTP client of our own.
//!
//! Processes started here (registries, proxies, token servers) are owned by
//! guards whose `Drop` kills and reaps them; children also get
//! `PR_SET_PDEATHSIG(SIGKILL)` so a test killed outright does not leak them.
//! That signal fires when the *spawning thread* ends, so start fixtures from
//! the test's own thread, not from a short-lived helper thread.

pub mod accept;
pub mod cgroup2;
pub mod dns_upstream;
pub mod http;
pub mod image;
pub mod mounts;
pub mod pki;
pub mod proc;
pub mod proxy;
pub mod push;
pub mod raw;
pub mod registry;
pub mod server;
pub mod token_server;
