//! OCI hooks: the hook program gets the container state JSON on stdin.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

/// Run one hook to completion (or its timeout); error on non-zero exit.
pub fn run(h: &Hook, state_json: &str) -> Result<(), String> {
    let path = h.path();
    let mut cmd = Command::new(path);
    if let Some(args) = h.args() {
        if let Some((a0, rest)) = args.split_first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, a0);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("{}: {st}", path.display())),
            Ok(None) => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{}: timed out", path.display()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn run_all(hooks: Option<&Vec<Hook>>, state_json: &str, stage: &str) -> Result<(), String> {
    for h in hooks.into_iter().flatten() {
        run(h, state_json).map_err(|e| format!("{stage} hook {e}"))?;
    }
    Ok(())
}

/// Runs every hook of a stage whose failure must not stop the lifecycle
/// (poststart, poststop): the runtime spec wants a warning for each failed
/// hook and the remaining hooks run as if it had succeeded. Returns the
/// warnings, which have also been printed.
pub fn run_all_warn(hooks: Option<&Vec<Hook>>, state_json: &str, stage: &str) -> Vec<String> {
    let mut warnings = vec![];
    for h in hooks.into_iter().flatten() {
        if let Err(e) = run(h, state_json) {
            let msg = format!("{stage} hook {e} (continuing, as the runtime spec requires)");
            crate::util::warn(&msg);
            warnings.push(msg);
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(args: &[&str]) -> Hook {
        serde_json::from_value(serde_json::json!({"path": "/bin/sh", "args": args})).unwrap()
    }

    #[test]
    fn a_failing_hook_warns_and_the_rest_still_run() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hooks = vec![
            hook(&["sh", "-c", "exit 3"]),
            hook(&["sh", "-c", &format!("cat > {}", out.display())]),
        ];
        let warnings = run_all_warn(Some(&hooks), "{\"id\":\"x\"}", "poststop");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("poststop hook /bin/sh"),
            "{warnings:?}"
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"x\"}");
    }

    #[test]
    fn run_all_stops_at_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hooks = vec![
            hook(&["sh", "-c", "exit 1"]),
            hook(&["sh", "-c", &format!("touch {}", out.display())]),
        ];
        assert!(run_all(Some(&hooks), "{}", "prestart").is_err());
        assert!(!out.exists());
    }
}
