//! Bridge networking for berth, as a library: network namespaces, bridges
//! and veth pairs over rtnetlink, file-locked IPAM, and nftables rules in
//! berth's own table. See README.md for the API and the design choices.

mod bpf;
pub mod dns;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod link;
pub mod namespace;
mod network;
mod nfnl;
mod nfnl_rule;
pub mod pool;
pub mod ports;
pub mod proxy;
pub mod redirect;
mod state;
pub mod sysctl;
mod types;

pub use error::{Error, Result};
pub use network::{attach, cleanup_orphans, detach, list, release, rename_leases, Network};
pub use types::{
    format_mac, AttachOpts, Attachment, Lease, NetEnv, NetworkConfig, NetworkState, PortMapping,
    Proto, RuleHandle, V6Config,
};
