//! Commands that talk to registries: pull, push, login, logout.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use registry_client::auth::StaticCredentials;
use registry_client::client::{Client, ClientConfig};
use registry_client::{Credentials, DockerConfig, Platform, Reference};

use super::args::{LoginArgs, LogoutArgs, PullArgs, PushArgs};
use super::progress::Progress;
use super::Ctx;
use crate::engine::config::BerthConfig;
use crate::engine::events::{PullObserver, Silent};
use crate::engine::{pull, push};

pub fn docker_config(ctx: &Ctx) -> Result<DockerConfig> {
    let cfg = match &ctx.docker_config {
        Some(dir) => DockerConfig::load_from(dir.join("config.json")),
        None => DockerConfig::load(),
    };
    cfg.map_err(|e| anyhow!("{e}"))
}

fn client_config(ctx: &Ctx) -> Result<ClientConfig> {
    let berth = BerthConfig::load()?;
    let creds = docker_config(ctx)?;
    Ok(ClientConfig {
        insecure_registries: berth.insecure_registries,
        mirrors: berth.registry_mirrors,
        certs_dirs: BerthConfig::certs_dirs(),
        credentials: Some(Arc::new(creds)),
        ..ClientConfig::default()
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn parse_ref(s: &str) -> Result<Reference> {
    s.parse::<Reference>().map_err(|e| anyhow!("{e}"))
}

/// Whether the user wrote a tag or digest (the parser fills in `latest`).
fn explicit_tag(input: &str) -> bool {
    input.contains('@')
        || input
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
}

fn say(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
    let _ = o.flush();
}

pub fn pull(ctx: &Ctx, a: PullArgs) -> Result<()> {
    let r = parse_ref(&a.name)?;
    let platform = a
        .platform
        .as_deref()
        .map(|p| p.parse::<Platform>().map_err(|e| anyhow!("{e}")))
        .transpose()?;
    let store = ctx.store()?;
    let client = Client::new(client_config(ctx)?);
    let rt = runtime()?;
    let tty = std::io::stdout().is_terminal();
    if a.all_tags {
        if explicit_tag(&a.name) {
            bail!("tag can't be used with --all-tags/-a");
        }
        let tags = rt
            .block_on(client.list_tags(&r))
            .map_err(|e| anyhow!("{e}"))?;
        if tags.is_empty() {
            bail!("{}: no tags found", r.familiar_name());
        }
        if !a.quiet {
            say(&format!("Pulling all tags of {}", r.familiar_name()));
        }
        let mut any_new = false;
        for t in tags {
            let tr = r.with_tag(&t);
            any_new |= !pull_one(&rt, &store, &client, &tr, platform.as_ref(), a.quiet, tty)?;
        }
        if !a.quiet {
            let status = if any_new {
                "Downloaded newer image for"
            } else {
                "Image is up to date for"
            };
            say(&format!("Status: {status} {}", r.familiar_name()));
        }
        say(&r.name());
        return Ok(());
    }
    if !explicit_tag(&a.name) && !a.quiet {
        say("Using default tag: latest");
    }
    let up_to_date = pull_one(&rt, &store, &client, &r, platform.as_ref(), a.quiet, tty)?;
    if !a.quiet {
        let status = if up_to_date {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        say(&format!("Status: {status} {}", r.familiar()));
    }
    say(&r.to_string());
    Ok(())
}

/// Pulls one tag or digest; returns whether it was already up to date.
fn pull_one(
    rt: &tokio::runtime::Runtime,
    store: &crate::engine::store::Store,
    client: &Client,
    r: &Reference,
    platform: Option<&Platform>,
    quiet: bool,
    tty: bool,
) -> Result<bool> {
    let what = match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, t) => t.clone().unwrap_or_else(|| "latest".into()),
    };
    let progress = Arc::new(Progress::new(tty));
    let obs: Arc<dyn PullObserver> = if quiet {
        Arc::new(Silent)
    } else {
        progress.clone()
    };
    if !quiet {
        say(&format!("{what}: Pulling from {}", r.repository));
    }
    let res = rt.block_on(pull::pull(store, client, r, platform, obs));
    progress.finish();
    let outcome = res?;
    if !quiet {
        say(&format!("Digest: {}", outcome.digest));
    }
    Ok(outcome.up_to_date)
}

pub fn push(ctx: &Ctx, a: PushArgs) -> Result<()> {
    let r = parse_ref(&a.name)?;
    let store = ctx.store()?;
    let client = Client::new(client_config(ctx)?);
    let rt = runtime()?;
    let tty = std::io::stdout().is_terminal();
    let idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let tags: Vec<Reference> = if a.all_tags {
        if explicit_tag(&a.name) {
            bail!("tag can't be used with --all-tags/-a");
        }
        let mut v: Vec<Reference> = idx
            .tags
            .keys()
            .filter_map(|k| k.parse::<Reference>().ok())
            .filter(|t| t.name() == r.name() && t.digest.is_none())
            .collect();
        v.sort_by(|x, y| x.tag.cmp(&y.tag));
        if v.is_empty() {
            bail!(
                "An image does not exist locally with the tag: {}",
                r.familiar_name()
            );
        }
        v
    } else {
        vec![r.clone()]
    };
    if !a.quiet {
        say(&format!(
            "The push refers to repository [{}]",
            r.familiar_name()
        ));
    }
    for t in &tags {
        let progress = Arc::new(Progress::new(tty));
        let obs: Arc<dyn push::PushObserver> = if a.quiet {
            Arc::new(push::SilentPush)
        } else {
            progress.clone()
        };
        let res = rt.block_on(push::push(&store, &client, t, obs));
        progress.finish();
        let out = res?;
        if !a.quiet {
            say(&format!(
                "{}: digest: {} size: {}",
                t.tag_or_latest(),
                out.digest,
                out.size
            ));
        }
    }
    if a.quiet {
        say(&if a.all_tags { r.name() } else { r.to_string() });
    }
    Ok(())
}

/// Reads a line from the terminal without echo (docker's password prompt).
fn read_password(prompt: &str) -> Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    print!("{prompt}");
    std::io::stdout().flush()?;
    let old = tcgetattr(&stdin).context("reading terminal settings")?;
    let mut quiet = old.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turning off echo")?;
    let mut line = String::new();
    let res = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &old);
    println!();
    res?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn login(ctx: &Ctx, a: LoginArgs) -> Result<()> {
    let server = a.server.clone().unwrap_or_else(|| "docker.io".into());
    let server = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if a.password.is_some() && a.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    if a.password_stdin && a.username.is_none() {
        bail!("Must provide --username with --password-stdin");
    }
    let tty = std::io::stdin().is_terminal();
    let username = match a.username {
        Some(u) => u,
        None => {
            if !tty {
                bail!("Cannot perform an interactive login from a non TTY device");
            }
            print!("Username: ");
            std::io::stdout().flush()?;
            let mut u = String::new();
            std::io::stdin().lock().read_line(&mut u)?;
            u.trim().to_string()
        }
    };
    if username.is_empty() {
        bail!("Username is required");
    }
    let password = if a.password_stdin {
        let mut p = String::new();
        std::io::stdin().read_to_string(&mut p)?;
        p.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        if !tty {
            bail!("Cannot perform an interactive login from a non TTY device");
        }
        read_password("Password: ")?
    };
    if password.is_empty() {
        bail!("Password is required");
    }
    let mut cfg = client_config(ctx)?;
    cfg.credentials = Some(Arc::new(StaticCredentials {
        registry: server.clone(),
        credentials: Credentials::Basic {
            username: username.clone(),
            password: password.clone(),
        },
    }));
    let client = Client::new(cfg);
    runtime()?
        .block_on(client.check_login(&server))
        .map_err(|e| anyhow!("{e}"))?;
    let mut store = docker_config(ctx)?;
    store
        .login_store(&server, &username, &password)
        .map_err(|e| anyhow!("{e}"))?;
    say("Login Succeeded");
    Ok(())
}

pub fn logout(ctx: &Ctx, a: LogoutArgs) -> Result<()> {
    let server = a.server.unwrap_or_else(|| "docker.io".into());
    let shown = if registry_client::reference::normalize_registry(&server) == "docker.io" {
        registry_client::reference::DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        server.clone()
    };
    let mut cfg = docker_config(ctx)?;
    if cfg.logout(&server).map_err(|e| anyhow!("{e}"))? {
        say(&format!("Removing login credentials for {shown}"));
    } else {
        say(&format!("Not logged in to {shown}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::explicit_tag;

    #[test]
    fn tag_given_or_not() {
        assert!(!explicit_tag("busybox"));
        assert!(!explicit_tag("localhost:5000/busybox"));
        assert!(explicit_tag("localhost:5000/busybox:1"));
        assert!(explicit_tag("busybox:latest"));
        assert!(explicit_tag("busybox@sha256:abc"));
    }
}
