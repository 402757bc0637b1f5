//! Name resolution between containers on user-defined networks, modelled
//! on podman's aardvark-dns: one resolver per state dir, listening on UDP
//! and TCP port 53 of each user-defined network's gateway, answering
//! container names, network aliases and short container ids from the
//! network state files, scoped by the asking container's address, and
//! relaying every other name to the host's upstream servers.
//!
//! - [`records`]: the view of the state files and the scoping rules
//! - [`answer`]: one query in, one answer (or "forward") out
//! - [`upstream`]: the host's resolv.conf and forwarding
//! - [`server`]: sockets, reloads, the lock and the idle exit

pub mod answer;
pub mod records;
pub mod server;
pub mod upstream;

pub use records::DEFAULT_NETWORK;
pub use server::{
    is_running, lock_path, probe, ready_path, run, Config, Exit, Probe, Ready, RESOLVER_PORT,
};
pub use upstream::UpstreamSource;
