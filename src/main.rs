//! berth: a daemonless container engine with docker's command line.

mod cli;
#[allow(dead_code)]
mod engine;

fn main() {
    if let Some(code) = engine::container::hidden_entry() {
        std::process::exit(code);
    }
    std::process::exit(cli::run());
}
