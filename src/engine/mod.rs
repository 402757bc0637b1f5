//! The engine: on-disk state (paths, locks, the image store) and the glue
//! between the CLI and the crates.

pub mod fsutil;
pub mod paths;
pub mod store;

pub mod archive;
pub mod config;
pub mod container;
pub mod dns;
pub mod events;
pub mod images_cmd;
pub mod network;
pub mod pull;
pub mod push;
pub mod volume;
