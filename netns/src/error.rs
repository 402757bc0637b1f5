//! Typed errors: each names the object that failed and what to do about it.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink: {op} on {object} failed: {source} (are you root with CAP_NET_ADMIN?)")]
    Netlink {
        op: &'static str,
        object: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("link {0} not found: was it removed by hand? run `berth network prune` to clean up")]
    LinkNotFound(String),
    #[error("network namespace {path}: {op} failed: {source}")]
    Namespace {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} is corrupt: {source}; remove it with `berth network rm -f` or fix it by hand")]
    CorruptState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("network {0} not found")]
    NetworkNotFound(String),
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    #[error("invalid network name {0:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")]
    InvalidNetworkName(String),
    #[error("invalid bridge name {0:?}: at most 15 characters of [a-zA-Z0-9_.-]")]
    InvalidBridgeName(String),
    #[error("invalid container id {0:?}: use [a-zA-Z0-9_.-], at most 64 characters")]
    InvalidContainerId(String),
    #[error("invalid {what} {value:?}: {why}")]
    InvalidConfig {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("Pool overlaps with other one on this address space: {subnet} overlaps {other}; choose another --subnet")]
    SubnetOverlap { subnet: String, other: String },
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network; pass --subnet")]
    PoolExhausted,
    #[error("could not find an available, non-overlapping IPv6 address pool to assign to the network; pass an IPv6 --subnet or add a v6 entry to default-address-pools")]
    PoolExhausted6,
    #[error("IPv6 is not enabled on network {network}: create it with --ipv6 to use --ip6")]
    NoIpv6 { network: String },
    #[error("cannot publish {host_ip}:{port} for container {container}: it has no IPv6 address on its network, and berth relays IPv6 to IPv4 only on [::] and [::1]; publish on an IPv4 address, on [::] or [::1], or use a network created with --ipv6")]
    NoIpv6Publish {
        host_ip: String,
        port: u16,
        container: String,
    },
    #[error("no available addresses on network {network} ({range}); remove containers or create a larger network")]
    AddressesExhausted { network: String, range: String },
    #[error("Address already in use: {ip} on network {network}; pick another --ip")]
    AddressInUse { network: String, ip: Ipv4Addr },
    #[error("invalid address {ip}: it does not belong to the subnet {subnet} (or ip-range) of network {network}")]
    AddressOutOfRange {
        network: String,
        ip: Ipv4Addr,
        subnet: String,
    },
    #[error("container {container} is already attached to network {network}; detach it first")]
    AlreadyAttached { network: String, container: String },
    #[error("Bind for {host_ip}:{port} failed: port is already allocated")]
    PortAllocated { host_ip: String, port: u16 },
    #[error(
        "Bind for {host_ip}:{start}-{end} failed: every port of the range is already allocated"
    )]
    PortRangeAllocated {
        host_ip: String,
        start: u16,
        end: u16,
    },
    #[error("no free host port for {proto} in the ephemeral range; free some ports or publish an explicit one")]
    NoFreePort { proto: String },
    #[error("network {0} is internal: ports cannot be published on it; remove -p or use a non-internal network")]
    InternalPublish(String),
    #[error("error while removing network: network {network} has active endpoints ({containers}); stop or disconnect them first")]
    NetworkInUse { network: String, containers: String },
    #[error("nft {op} on table {table} failed: {stderr}")]
    Nft {
        op: String,
        table: String,
        stderr: String,
    },
    #[error("could not run nft ({source}); install the nftables package")]
    NftMissing {
        #[source]
        source: io::Error,
    },
    #[error("sysctl {path}: {source}")]
    Sysctl {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("worker thread for {0} panicked; this is a berth bug, please report it")]
    ThreadPanicked(&'static str),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
