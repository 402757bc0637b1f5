//! runc-compatible command line: `berth runtime <command>`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use oci_spec::runtime::{Process, Spec};

use crate::{CreateOpts, ExecOpts, Runtime};

#[derive(Debug, Parser)]
#[command(
    name = "runtime",
    about = "berth's OCI runtime (runc-compatible commands)"
)]
pub struct RuntimeCli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = "/run/berth/runtime")]
    pub root: PathBuf,
    /// Also write errors to this file.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Create a container: set up everything but the user process.
    Create {
        id: String,
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long = "no-pivot")]
        no_pivot: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: u32,
    },
    /// Start the user process of a created container.
    Start { id: String },
    /// Print the OCI state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init.
    Kill {
        id: String,
        signal: Option<String>,
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a stopped container (or any, with --force).
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// Create and start a container; wait for it unless --detach.
    Run {
        id: String,
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long = "no-pivot")]
        no_pivot: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: u32,
    },
    /// Run a process in a running container.
    Exec {
        id: String,
        /// process.json with the OCI process to run.
        #[arg(short, long)]
        process: Option<PathBuf>,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        #[arg(short, long)]
        env: Vec<String>,
        /// uid[:gid]
        #[arg(short, long)]
        user: Option<String>,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: u32,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// List the pids of a container's processes.
    Ps {
        id: String,
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
}

static FORWARD_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_PID.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// While `run`/`exec` wait in the foreground, signals sent to the runtime
/// go to the container's process, as runc does.
fn forward_signals_to(pid: i32) {
    FORWARD_PID.store(pid, std::sync::atomic::Ordering::Relaxed);
    for s in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        // SAFETY: installing a handler that only calls kill(2).
        unsafe { libc::signal(s, forward as *const () as libc::sighandler_t) };
    }
}

/// Parse "KILL", "SIGKILL" or "9".
pub fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(format!("unknown signal {s:?}")),
    };
    Ok(n)
}

fn report(cli: &RuntimeCli, msg: &str) {
    eprintln!("{msg}");
    if let Some(p) = &cli.log {
        let line = if cli.log_format == "json" {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let t = crate::util::rfc3339(t);
            format!(
                "{}\n",
                serde_json::json!({"level": "error", "msg": msg, "time": t})
            )
        } else {
            format!("level=error msg={msg:?}\n")
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Entry point for `berth runtime ARGS...` (args[0] is the program name).
pub fn cli_main(args: Vec<String>) -> i32 {
    let cli = match RuntimeCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run_command(&cli) {
        Ok(code) => code,
        Err(msg) => {
            report(&cli, &msg);
            1
        }
    }
}

fn json_out<T: serde::Serialize>(v: &T) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}

/// Run one parsed command; `Ok(exit code)`.
pub fn run_command(cli: &RuntimeCli) -> Result<i32, String> {
    let rt = Runtime::new(&cli.root);
    let e = |e: crate::Error| e.to_string();
    match &cli.command {
        RuntimeCommand::Create {
            id,
            bundle,
            pid_file,
            console_socket,
            no_pivot,
            preserve_fds,
        } => {
            let opts = CreateOpts {
                pid_file: pid_file.clone(),
                console_socket: console_socket.clone(),
                no_pivot: *no_pivot,
                preserve_fds: *preserve_fds,
                ..Default::default()
            };
            rt.create(id, bundle, &opts).map_err(e)?;
            Ok(0)
        }
        RuntimeCommand::Start { id } => rt.start(id).map(|_| 0).map_err(e),
        RuntimeCommand::State { id } => {
            json_out(&rt.state(id).map_err(e)?)?;
            Ok(0)
        }
        RuntimeCommand::Kill { id, signal, all } => {
            let sig = parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(id, sig, *all).map(|_| 0).map_err(e)
        }
        RuntimeCommand::Delete { id, force } => rt.delete(id, *force).map(|_| 0).map_err(e),
        RuntimeCommand::Run {
            id,
            bundle,
            pid_file,
            console_socket,
            no_pivot,
            detach,
            preserve_fds,
        } => {
            let opts = CreateOpts {
                pid_file: pid_file.clone(),
                console_socket: console_socket.clone(),
                no_pivot: *no_pivot,
                preserve_fds: *preserve_fds,
                ..Default::default()
            };
            if *detach {
                rt.create(id, bundle, &opts).map_err(e)?;
                if let Err(err) = rt.start(id) {
                    let _ = rt.delete(id, true);
                    return Err(err.to_string());
                }
                Ok(0)
            } else {
                let st = rt.create(id, bundle, &opts).map_err(e)?;
                forward_signals_to(st.pid);
                if let Err(err) = rt.start(id) {
                    let _ = rt.delete(id, true);
                    return Err(err.to_string());
                }
                let code = crate::wait(st.pid);
                rt.delete(id, true).map_err(e)?;
                Ok(code)
            }
        }
        RuntimeCommand::Exec {
            id,
            process,
            tty,
            detach,
            pid_file,
            console_socket,
            cwd,
            env,
            user,
            preserve_fds,
            args,
        } => {
            let mut p: Process = match process {
                Some(path) => {
                    let data = std::fs::read(path)
                        .map_err(|err| format!("read {}: {err}", path.display()))?;
                    serde_json::from_slice(&data)
                        .map_err(|err| format!("parse {}: {err}", path.display()))?
                }
                None => {
                    if args.is_empty() {
                        return Err(
                            "exec: give the command to run, or --process process.json".into()
                        );
                    }
                    let st = rt.state(id).map_err(e)?;
                    let spec =
                        Spec::load(st.bundle.join("config.json")).map_err(|err| err.to_string())?;
                    let mut p = spec.process().clone().unwrap_or_default();
                    p.set_args(Some(args.clone()));
                    p.set_terminal(Some(false));
                    p
                }
            };
            if *tty {
                p.set_terminal(Some(true));
            }
            if let Some(c) = cwd {
                p.set_cwd(c.clone());
            }
            if !env.is_empty() {
                let mut v = p.env().clone().unwrap_or_default();
                v.extend(env.iter().cloned());
                p.set_env(Some(v));
            }
            if let Some(u) = user {
                let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
                let mut us = p.user().clone();
                us.set_uid(
                    uid.parse()
                        .map_err(|_| format!("--user {u:?}: want uid[:gid]"))?,
                );
                us.set_gid(
                    gid.parse()
                        .map_err(|_| format!("--user {u:?}: want uid[:gid]"))?,
                );
                p.set_user(us);
            }
            let opts = ExecOpts {
                pid_file: pid_file.clone(),
                console_socket: console_socket.clone(),
                preserve_fds: *preserve_fds,
                ..Default::default()
            };
            let pid = rt.exec(id, &p, &opts).map_err(e)?;
            if *detach {
                return Ok(0);
            }
            forward_signals_to(pid);
            Ok(crate::wait(pid))
        }
        RuntimeCommand::Ps { id, format } => {
            let pids = rt.ps(id).map_err(e)?;
            if format == "json" {
                json_out(&pids)?;
            } else {
                println!("PID");
                for p in pids {
                    println!("{p}");
                }
            }
            Ok(0)
        }
        RuntimeCommand::List { format, quiet } => {
            let all = rt.list().map_err(e)?;
            if *quiet {
                for s in &all {
                    println!("{}", s.id);
                }
            } else if format == "json" {
                json_out(&all)?;
            } else {
                let mut rows = vec![[
                    "ID".to_string(),
                    "PID".into(),
                    "STATUS".into(),
                    "BUNDLE".into(),
                    "CREATED".into(),
                ]];
                for s in &all {
                    let created = crate::util::rfc3339(rt.created_at(&s.id).unwrap_or(0));
                    rows.push([
                        s.id.clone(),
                        s.pid.to_string(),
                        s.status.to_string(),
                        s.bundle.display().to_string(),
                        created,
                    ]);
                }
                let mut w = [0usize; 5];
                for r in &rows {
                    for (i, c) in r.iter().enumerate() {
                        w[i] = w[i].max(c.len());
                    }
                }
                for r in rows {
                    let line: Vec<String> = r
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("{c:<width$}", width = w[i]))
                        .collect();
                    println!("{}", line.join("   ").trim_end());
                }
            }
            Ok(0)
        }
        RuntimeCommand::Pause { id } => rt.pause(id).map(|_| 0).map_err(e),
        RuntimeCommand::Resume { id } => rt.resume(id).map(|_| 0).map_err(e),
        RuntimeCommand::Spec { bundle } => {
            let p = bundle.join("config.json");
            if p.exists() {
                return Err(format!("File {} exists. Remove it first", p.display()));
            }
            let s =
                serde_json::to_string_pretty(&Spec::default()).map_err(|err| err.to_string())?;
            std::fs::write(&p, s).map_err(|err| format!("write {}: {err}", p.display()))?;
            Ok(0)
        }
    }
}
