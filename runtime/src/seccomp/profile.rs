//! docker's seccomp profile format (moby `profiles/seccomp`) -> OCI
//! `LinuxSeccomp`, resolved as moby resolves it: `archMap` picks the
//! native architecture and its sub-architectures, and each rule's
//! `includes`/`excludes` (arches, caps, minKernel) decide whether it applies.
//! An OCI `LinuxSeccomp` document is a docker profile without those
//! extras, so both formats are read here.

use std::collections::HashSet;

use oci_spec::runtime::LinuxSeccomp;
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("decoding seccomp profile failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("decoding seccomp profile failed: 'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'")]
    NameAndNames,
    #[error("decoding seccomp profile failed: {0}")]
    Invalid(String),
}

/// What the rules are resolved against.
pub struct Target<'a> {
    /// docker/Go arch name: amd64, arm64, s390x, ...
    pub arch: &'a str,
    /// The container's capabilities, `CAP_*` names.
    pub caps: &'a HashSet<String>,
    /// (major, minor) of the running kernel.
    pub kernel: (u32, u32),
}

fn native_scmp(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" | "x86_64" => "SCMP_ARCH_X86_64",
        "arm64" | "aarch64" => "SCMP_ARCH_AARCH64",
        "386" | "x86" => "SCMP_ARCH_X86",
        "arm" => "SCMP_ARCH_ARM",
        "s390x" => "SCMP_ARCH_S390X",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64le" => "SCMP_ARCH_MIPSEL64",
        _ => return None,
    })
}

fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_kernel(s: &str) -> Result<(u32, u32), ProfileError> {
    let mut it = s.split('.');
    let p = |x: Option<&str>| x.and_then(|x| x.parse::<u32>().ok());
    match (p(it.next()), p(it.next())) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(ProfileError::Invalid(format!(
            "invalid kernel version {s:?}: use MAJOR.MINOR, e.g. 4.8"
        ))),
    }
}

fn cap_name(c: &str) -> String {
    let u = c.to_ascii_uppercase();
    if u.starts_with("CAP_") {
        u
    } else {
        format!("CAP_{u}")
    }
}

/// Whether a rule applies (moby's `includes`/`excludes` semantics).
fn applies(rule: &Map<String, Value>, t: &Target<'_>) -> Result<bool, ProfileError> {
    let arch = go_arch(t.arch);
    let has = |c: &String| t.caps.contains(&cap_name(c));
    if let Some(inc) = rule.get("includes").and_then(Value::as_object) {
        let arches = strings(inc.get("arches"));
        if !arches.is_empty() && !arches.iter().any(|a| go_arch(a) == arch) {
            return Ok(false);
        }
        if !strings(inc.get("caps")).iter().all(has) {
            return Ok(false);
        }
        if let Some(k) = inc.get("minKernel").and_then(Value::as_str) {
            if !k.is_empty() && t.kernel < parse_kernel(k)? {
                return Ok(false);
            }
        }
    }
    if let Some(exc) = rule.get("excludes").and_then(Value::as_object) {
        if strings(exc.get("arches"))
            .iter()
            .any(|a| go_arch(a) == arch)
        {
            return Ok(false);
        }
        if strings(exc.get("caps")).iter().any(has) {
            return Ok(false);
        }
        if let Some(k) = exc.get("minKernel").and_then(Value::as_str) {
            if !k.is_empty() && t.kernel >= parse_kernel(k)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// A docker (or OCI) profile as OCI `LinuxSeccomp` for `t`.
pub fn from_json(bytes: &[u8], t: &Target<'_>) -> Result<LinuxSeccomp, ProfileError> {
    let doc: Value = serde_json::from_slice(bytes)?;
    let obj = doc
        .as_object()
        .ok_or_else(|| ProfileError::Invalid("the profile is not a JSON object".into()))?;
    let mut out = Map::new();
    for k in [
        "defaultAction",
        "defaultErrnoRet",
        "flags",
        "listenerPath",
        "listenerMetadata",
    ] {
        if let Some(v) = obj.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if !out.contains_key("defaultAction") {
        return Err(ProfileError::Invalid("defaultAction is missing".into()));
    }
    let mut arches = strings(obj.get("architectures"));
    if let (Some(native), Some(map)) = (
        native_scmp(t.arch),
        obj.get("archMap").and_then(Value::as_array),
    ) {
        for m in map {
            if m.get("architecture").and_then(Value::as_str) == Some(native) {
                arches.push(native.to_string());
                arches.extend(strings(m.get("subArchitectures")));
            }
        }
    }
    if !arches.is_empty() {
        out.insert("architectures".into(), json!(arches));
    }
    let mut syscalls = Vec::new();
    for (i, r) in obj
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let rule = r
            .as_object()
            .ok_or_else(|| ProfileError::Invalid(format!("syscalls[{i}] is not an object")))?;
        let name = rule
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let mut names = strings(rule.get("names"));
        match (name, names.is_empty()) {
            (Some(_), false) => return Err(ProfileError::NameAndNames),
            (Some(n), true) => names.push(n.to_string()),
            _ => {}
        }
        if !applies(rule, t)? {
            continue;
        }
        let mut sc = Map::new();
        sc.insert("names".into(), json!(names));
        for k in ["action", "errnoRet", "args"] {
            if let Some(v) = rule.get(k).filter(|v| !v.is_null()) {
                sc.insert(k.into(), v.clone());
            }
        }
        syscalls.push(Value::Object(sc));
    }
    out.insert("syscalls".into(), Value::Array(syscalls));
    Ok(serde_json::from_value(Value::Object(out))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Arch, LinuxSeccompAction};

    const PROFILE: &str = r#"{
      "defaultAction": "SCMP_ACT_ERRNO",
      "defaultErrnoRet": 1,
      "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
      ],
      "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "comment": "", "includes": {}, "excludes": {}},
        {"name": "getpid", "action": "SCMP_ACT_ALLOW"},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["new_in_9"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "9.1"}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["s390_only"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64", "arm64"]}}
      ]
    }"#;

    fn names(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .flat_map(|c| c.names().clone())
            .collect()
    }

    #[test]
    fn resolves_arch_caps_and_kernel_like_moby() {
        let none = HashSet::new();
        let t = Target {
            arch: "amd64",
            caps: &none,
            kernel: (6, 18),
        };
        let s = from_json(PROFILE.as_bytes(), &t).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1));
        assert_eq!(
            s.architectures().clone().unwrap(),
            vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
        );
        assert_eq!(
            names(&s),
            [
                "read",
                "write",
                "getpid",
                "arch_prctl",
                "clone3",
                "personality"
            ]
        );
        let clone3 = &s.syscalls().as_ref().unwrap()[3];
        assert_eq!(clone3.errno_ret(), Some(38));
        let pers = &s.syscalls().as_ref().unwrap()[4];
        assert_eq!(pers.args().as_ref().unwrap()[0].value(), 8);

        let admin: HashSet<String> = ["CAP_SYS_ADMIN".to_string()].into();
        let t = Target {
            arch: "aarch64",
            caps: &admin,
            kernel: (9, 2),
        };
        let s = from_json(PROFILE.as_bytes(), &t).unwrap();
        assert_eq!(
            s.architectures().clone().unwrap(),
            vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
        );
        assert_eq!(
            names(&s),
            [
                "read",
                "write",
                "getpid",
                "mount",
                "new_in_9",
                "personality"
            ]
        );
    }

    #[test]
    fn oci_documents_pass_through_and_errors_are_clear() {
        let none = HashSet::new();
        let t = Target {
            arch: "amd64",
            caps: &none,
            kernel: (6, 1),
        };
        let oci = r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#;
        let s = from_json(oci.as_bytes(), &t).unwrap();
        assert_eq!(names(&s), ["mkdir"]);
        assert_eq!(
            s.architectures().clone().unwrap(),
            vec![Arch::ScmpArchX86_64]
        );
        let both = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ERRNO"}]}"#;
        assert!(matches!(
            from_json(both.as_bytes(), &t),
            Err(ProfileError::NameAndNames)
        ));
        assert!(from_json(b"{nope", &t).is_err());
        assert!(from_json(br#"{"syscalls":[]}"#, &t).is_err());
        let bad_action = r#"{"defaultAction":"SCMP_ACT_SOMETIMES"}"#;
        assert!(from_json(bad_action.as_bytes(), &t).is_err());
        let bad_kernel = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","includes":{"minKernel":"x"}}]}"#;
        assert!(from_json(bad_kernel.as_bytes(), &t).is_err());
    }
}
