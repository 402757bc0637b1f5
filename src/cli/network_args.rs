//! Arguments of `berth network ...` and `berth port`, shaped like docker's.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(NetCreateArgs),
    /// List networks
    #[command(visible_aliases = ["list"])]
    Ls(NetLsArgs),
    /// Display detailed information on one or more networks
    Inspect(NetInspectArgs),
    /// Remove one or more networks
    #[command(visible_aliases = ["remove"])]
    Rm(NetRmArgs),
    /// Remove all unused networks
    Prune(NetPruneArgs),
    /// Connect a container to a network
    Connect(NetConnectArgs),
    /// Disconnect a container from a network
    Disconnect(NetDisconnectArgs),
}

#[derive(Debug, Args)]
pub struct NetCreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable or disable IPv6 networking
    #[arg(
        long,
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false",
        require_equals = true,
        action = clap::ArgAction::Set
    )]
    pub ipv6: bool,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct NetLsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct NetInspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetRmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
    #[arg(value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NetConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    pub ip6: Option<String>,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct NetDisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}
