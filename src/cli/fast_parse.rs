//! `berth run` parsed against a command tree that holds `run` alone.
//!
//! clap builds the whole tree (every docker command with every flag) before
//! it parses anything: about 0.7 ms of CPU and 200 page faults, on the
//! critical path of every `run`. When argv is `[global flags] run ...`, a
//! tree of the global flags and `run` gives the same `Cli` for every command
//! line it accepts (the same `RunArgs` definition, the same global flags);
//! anything it does not accept (an error, `--help`, `container run`) falls
//! back to the full parse, so errors and help read exactly as before.

use std::ffi::OsString;

use clap::{Args, Command, FromArgMatches};

use super::args::{Cli, GlobalArgs};
use super::container_args::RunArgs;

/// The parsed command line, when it is a `run` the small tree accepts.
pub fn run_only(args: &[OsString]) -> Option<Cli> {
    if !first_command_is_run(args) {
        return None;
    }
    let tree = GlobalArgs::augment_args(Command::new("berth").disable_help_subcommand(true))
        .subcommand(RunArgs::augment_args(Command::new("run")));
    let m = tree.try_get_matches_from(args).ok()?;
    Cli::from_arg_matches(&m).ok()
}

/// `[global flags]... run ...`
fn first_command_is_run(args: &[OsString]) -> bool {
    crate::engine::container::zygote::command_index(args).is_some_and(|i| args[i] == "run")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn os(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    /// The small tree and the full one agree on what they both accept.
    #[test]
    fn same_cli_as_the_full_parse() {
        for argv in [
            &[
                "berth",
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "true",
            ][..],
            &[
                "berth", "--root", "/r", "-D", "run", "-d", "-e", "A=1", "img", "sh", "-c", "x",
            ],
            &[
                "berth", "-l", "debug", "run", "--name", "n", "-p", "80:80", "img",
            ],
            &["berth", "run", "--root", "/r", "-it", "img", "--", "-x"],
        ] {
            let fast = run_only(&os(argv)).expect("fast parse");
            let full = Cli::try_parse_from(os(argv)).expect("full parse");
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{argv:?}");
        }
    }

    #[test]
    fn anything_else_takes_the_full_parse() {
        for argv in [
            &["berth", "ps"][..],
            &["berth", "container", "run", "img"],
            &["berth", "run", "--help"],
            &["berth", "run", "--no-such-flag", "img"],
            &["berth", "run"],
            &["berth", "--root", "run", "ps"],
        ] {
            assert!(run_only(&os(argv)).is_none(), "{argv:?}");
        }
    }
}
