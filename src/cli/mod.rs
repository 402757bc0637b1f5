//! Command-line surface: arguments, dispatch, output formatting, progress.

mod archive;
pub mod args;
mod attach_client;
pub mod container_args;
mod container_flags;
mod containers;
mod ctr_attach;
mod ctr_cp;
mod ctr_cpuset;
mod ctr_exec;
mod ctr_fs;
mod ctr_inspect;
mod ctr_logs;
mod ctr_more;
pub mod ctr_more_args;
mod ctr_ps;
mod ctr_stats;
mod ctr_sysctl;
mod df_containers;
pub mod errors;
mod exec_detach;
mod fast_parse;
pub mod format;
mod images;
mod net_flags;
mod network;
mod network_args;
pub mod progress;
mod registry;
pub mod table;
pub mod units;
pub mod volume;

use anyhow::Result;
use args::{Cli, Command, ImageCommand, SystemCommand};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;

/// Exit code for command-line usage errors (docker's `StatusError` 125).
pub const EXIT_USAGE: i32 = 125;

/// An error that was already reported (per-item errors of `rmi`, ...) and
/// only sets the exit code.
#[derive(Debug, thiserror::Error)]
#[error("{code}")]
pub struct Reported {
    pub code: i32,
}

/// Parses arguments, runs the command, prints errors by `errors::line`.
pub fn run() -> i32 {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match fast_parse::run_only(&argv).map_or_else(|| Cli::try_parse_from(argv), Ok) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    init_logging(&cli);
    match dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            if let Some(r) = e.downcast_ref::<Reported>() {
                return r.code;
            }
            eprintln!("{}", errors::line(&e));
            1
        }
    }
}

pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s
}

/// Docker exits 125 for flag errors and 1 for a wrong number of arguments;
/// help and version print to stdout and exit 0.
fn usage_error(e: clap::Error) -> i32 {
    let code = match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
        ErrorKind::MissingRequiredArgument | ErrorKind::TooFewValues => 1,
        ErrorKind::UnknownArgument => match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(a)) if !a.starts_with('-') => 1,
            _ => EXIT_USAGE,
        },
        _ => EXIT_USAGE,
    };
    let _ = e.print();
    code
}

fn init_logging(cli: &Cli) {
    let level = if cli.global.debug {
        "debug"
    } else {
        match cli.global.log_level.as_deref() {
            Some("fatal") => "error",
            Some(l) => l,
            None => "warn",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// What every command needs: where the store and client config live.
pub struct Ctx {
    pub root: Option<std::path::PathBuf>,
    pub docker_config: Option<std::path::PathBuf>,
}

impl Ctx {
    pub fn paths(&self) -> crate::engine::paths::Paths {
        crate::engine::paths::Paths::new(self.root.clone())
    }

    pub fn store(&self) -> Result<crate::engine::store::Store> {
        let paths = self.paths();
        crate::engine::store::Store::open(paths.clone()).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the image store at {}: {e}",
                paths.root.display()
            )
        })
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    let ctx = Ctx {
        root: cli.global.root,
        docker_config: cli.global.config,
    };
    match cli.command {
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::list(&ctx, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::rmi(&ctx, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => images::tag(&ctx, a),
        Command::Image(ImageCommand::Inspect(a)) => images::inspect(&ctx, a.format, a.images),
        Command::Inspect(a) => ctr_inspect::inspect(&ctx, a.format, a.names, false),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => images::history(&ctx, a),
        Command::Image(ImageCommand::Prune(a)) => images::prune(&ctx, a),
        Command::System(SystemCommand::Df(a)) => images::df(&ctx, a),
        Command::System(SystemCommand::Boot(_)) => ctr_more::boot(&ctx),
        Command::Version(a) => images::version(a),
        Command::Info(a) | Command::System(SystemCommand::Info(a)) => images::info(&ctx, a),
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => registry::pull(&ctx, a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => registry::push(&ctx, a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => archive::save(&ctx, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => archive::load(&ctx, a),
        Command::Login(a) => registry::login(&ctx, a),
        Command::Logout(a) => registry::logout(&ctx, a),
        Command::Containers(c) => containers::dispatch(&ctx, *c),
        Command::Network(c) => network::dispatch(&ctx, c),
        Command::Port(a) => network::port(&ctx, a),
        Command::Volume(c) => volume::dispatch(&ctx, c),
    }
}
