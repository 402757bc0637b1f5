//! `exec` (the CLI is the exec'd process's parent and waits for it) and `top`.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use anyhow::{anyhow, bail, Result};

use super::container_args::{ExecArgs, TopArgs};
use super::{Ctx, Reported};
use crate::engine::container::console::ConsoleReceiver;
use crate::engine::container::ops::{self, ExecRequest};
use crate::engine::container::{liveness, ContainerStore};

pub fn exec(ctx: &Ctx, a: ExecArgs) -> Result<()> {
    let cs = ContainerStore::new(ctx.paths());
    let id = cs.resolve(&a.container)?;
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(super::container_flags::read_env_file(f).map_err(super::errors::client)?);
    }
    env.extend(a.env.iter().cloned());
    let console = if a.tty && !a.detach {
        let (dirfd, p) = crate::engine::container::store::short_socket_path(
            &cs.run_dir(&id),
            &format!("exec-{}.sock", crate::engine::fsutil::random_suffix()),
        )?;
        Some(ConsoleReceiver::listen(&p, dirfd)?)
    } else {
        None
    };
    let req = ExecRequest {
        cmd: a.cmd.clone(),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        privileged: a.privileged,
        tty: console.is_some(),
        detach: a.detach,
        console_socket: console.as_ref().map(|c| c.path().to_path_buf()),
    };
    if a.detach {
        return super::exec_detach::run(|| ops::exec(&cs, &id, &req));
    }
    let pid = match ops::exec(&cs, &id, &req) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}", super::errors::line(&e));
            return Err(Reported { code: 1 }.into());
        }
    };
    if let Some(c) = console {
        let master = c.master()?;
        let saved = rustix::termios::tcgetattr(std::io::stdin()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            raw.make_raw();
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                &raw,
            );
        }
        if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdout()) {
            let _ = rustix::termios::tcsetwinsize(&master, ws);
        }
        let mut to_master = std::fs::File::from(master.try_clone()?);
        if a.interactive {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut i = std::io::stdin();
                while let Ok(n) = i.read(&mut buf) {
                    if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
        let mut from = std::fs::File::from(master);
        let mut buf = [0u8; 8192];
        let mut out = std::io::stdout();
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
        }
        if let Some(t) = &saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
    let code = runtime::wait(pid);
    if code != 0 {
        return Err(Reported { code }.into());
    }
    Ok(())
}

/// `top`: `ps` (default `-ef`) filtered to the container's processes.
pub fn top(ctx: &Ctx, a: TopArgs) -> Result<()> {
    let cs = ContainerStore::new(ctx.paths());
    let id = cs.resolve(&a.container)?;
    let st = liveness::current(&cs, &id)?;
    if !st.running() {
        bail!("Error response from daemon: container {id} is not running");
    }
    let pids = cs.runtime().ps(&id).map_err(|e| anyhow!("{e}"))?;
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| anyhow!("cannot run ps: {e}"))?;
    if !out.status.success() {
        bail!(
            "Error response from daemon: ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("");
    let pid_col = head
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| {
            anyhow!("Error response from daemon: Couldn't find PID field in ps output")
        })?;
    let mut rows = vec![head.split_whitespace().collect::<Vec<_>>().join("\t")];
    let ncols = head.split_whitespace().count();
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let Some(p) = f.get(pid_col).and_then(|p| p.parse::<i32>().ok()) {
            if pids.contains(&p) {
                let mut cols: Vec<String> = f[..(ncols - 1).min(f.len())]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                if f.len() >= ncols {
                    cols.push(f[ncols - 1..].join(" "));
                }
                rows.push(cols.join("\t"));
            }
        }
    }
    let mut body = rows.join("\n");
    body.push('\n');
    print!("{}", super::table::tabulate(&body));
    let _ = std::io::stdout().as_raw_fd();
    Ok(())
}
