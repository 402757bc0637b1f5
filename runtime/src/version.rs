//! What config.json must say before anything is created: an `ociVersion`
//! this runtime implements, and the stand-in process of a bundle without one.

use oci_spec::runtime::{Process, User};

use crate::Error;

/// The major version of the runtime spec berth implements.
const SUPPORTED_MAJOR: u64 = 1;

/// `ociVersion` must be SemVer 2.0.0 (config.md) and of the major version
/// berth implements; the spec wants an error for invalid or unsupported
/// values rather than a guess.
pub fn check(version: &str) -> Result<(), Error> {
    let major = semver_major(version).ok_or_else(|| {
        Error::Config(format!(
            "ociVersion {version:?} is not a SemVer 2.0.0 version; write it as {SUPPORTED_MAJOR}.MINOR.PATCH, e.g. \"1.0.2\""
        ))
    })?;
    if major != SUPPORTED_MAJOR {
        return Err(Error::Config(format!(
            "ociVersion {version:?} is not supported: berth implements runtime spec {SUPPORTED_MAJOR}.x"
        )));
    }
    Ok(())
}

/// The major version of a SemVer 2.0.0 string, `None` when it is not one.
fn semver_major(v: &str) -> Option<u64> {
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() != 3 || !nums.iter().all(|n| numeric_identifier(n)) {
        return None;
    }
    let ids_ok = |s: &str, numeric_rule: bool| {
        s.split('.').all(|id| {
            !id.is_empty()
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && (!numeric_rule
                    || !id.chars().all(|c| c.is_ascii_digit())
                    || numeric_identifier(id))
        })
    };
    if pre.is_some_and(|p| !ids_ok(p, true)) || build.is_some_and(|b| !ids_ok(b, false)) {
        return None;
    }
    nums[0].parse().ok()
}

/// Digits without a leading zero (SemVer's numeric identifier).
fn numeric_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// Planned for a config.json without `process`: init sets the container up
/// and then waits for a `start` that refuses to run it, so none of this is
/// ever executed; it only has to pass the planning checks.
pub fn placeholder_process() -> Process {
    let mut p = Process::default();
    p.set_terminal(Some(false));
    p.set_user(User::default());
    p.set_args(Some(vec!["/".into()]));
    p.set_env(None);
    p.set_cwd("/".into());
    p.set_capabilities(None);
    p.set_rlimits(None);
    p.set_no_new_privileges(Some(false));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_semver_of_the_supported_major() {
        for v in [
            "1.0.0",
            "1.0.2",
            "1.2.0",
            "1.0.2-dev",
            "1.0.0-rc.1+build.5",
            "1.1.0+x",
        ] {
            assert!(check(v).is_ok(), "{v}");
        }
    }

    #[test]
    fn rejects_invalid_and_unsupported_versions() {
        for v in [
            "invalid", "", "1", "1.0", "1.0.0.0", "01.0.0", "1.00.0", "1.0.0-", "1.0.0-01",
            "1.0.0+", "v1.0.0", "2.0.0", "0.9.0",
        ] {
            assert!(check(v).is_err(), "{v}");
        }
    }

    #[test]
    fn placeholder_process_plans() {
        let p = placeholder_process();
        assert_eq!(p.args().as_deref(), Some(&["/".to_string()][..]));
        assert!(p.capabilities().is_none());
    }
}
