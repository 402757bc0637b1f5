//! berth: a daemonless container engine with docker's command line.

mod cli;
#[allow(dead_code)]
mod engine;

fn main() {
    std::process::exit(cli::run());
}
