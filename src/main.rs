//! berth: a daemonless container engine with docker's command line.

use std::path::Path;

use berth::cli;

fn main() {
    if let Some(code) = berth::engine::container::hidden_entry() {
        std::process::exit(code);
    }
    let args: Vec<String> = std::env::args().collect();
    // The runc-compatible CLI answers both `berth runtime …` and a binary
    // installed under a runtime's name (`podman --runtime /usr/local/bin/berth-runtime`).
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("berth");
    if argv0.ends_with("-runtime") || argv0 == "runc" {
        std::process::exit(runtime::cli_main(args));
    }
    if args.get(1).map(String::as_str) == Some("runtime") {
        std::process::exit(runtime::cli_main(args.into_iter().skip(1).collect()));
    }
    // `run` only: fork its monitor now, small and single-threaded.
    berth::engine::container::zygote::prefork(&args);
    let code = cli::run();
    berth::engine::container::zygote::release();
    std::process::exit(code);
}
