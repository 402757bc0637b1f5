//! `commit -c`: the Dockerfile instructions docker accepts there (CMD,
//! ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, WORKDIR, VOLUME,
//! STOPSIGNAL), applied to the image config's `config` object.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

/// JSON array form (`["a","b"]`) or shell form (`sh -c "..."`).
fn exec_or_shell(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), t.to_string()]
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        return s[1..s.len() - 1].replace("\\\"", "\"");
    }
    s.to_string()
}

/// Splits on whitespace outside quotes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
                any = true;
            }
            None if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            None => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// `k=v k2="v 2"` or the legacy `k v` form; values unquoted.
fn pairs(rest: &str, what: &str) -> Result<Vec<(String, String)>> {
    let ws = words(rest);
    if ws.is_empty() {
        bail!("{what} requires at least one argument");
    }
    if !ws[0].contains('=') {
        let (k, v) = rest
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| anyhow!("{what} must have two arguments"))?;
        return Ok(vec![(k.to_string(), unquote(v))]);
    }
    ws.iter()
        .map(|w| {
            let (k, v) = w.split_once('=').ok_or_else(|| {
                anyhow!("Syntax error - can't find = in {w:?}. Must be of the form: name=value")
            })?;
            Ok((unquote(k), unquote(v)))
        })
        .collect()
}

/// Edits the object at `key` (made an object if it is not one).
fn with_obj(
    cfg: &mut Map<String, Value>,
    key: &str,
    f: impl FnOnce(&mut Map<String, Value>) -> Result<()>,
) -> Result<()> {
    let mut m = match cfg.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let r = f(&mut m);
    cfg.insert(key.to_string(), Value::Object(m));
    r
}

/// Applies one `-c` line to the image config's `config` object.
pub fn apply(cfg: &mut Map<String, Value>, line: &str) -> Result<()> {
    let line = line.trim();
    let (instr, rest) = match line.split_once(char::is_whitespace) {
        Some((i, r)) => (i, r.trim()),
        None => (line, ""),
    };
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => {
            cfg.insert("Cmd".into(), json!(exec_or_shell(rest)));
        }
        "ENTRYPOINT" => {
            cfg.insert("Entrypoint".into(), json!(exec_or_shell(rest)));
        }
        "ENV" => {
            let mut env: Vec<String> = cfg
                .get("Env")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            for (k, v) in pairs(rest, "ENV")? {
                env.retain(|e| e.split('=').next() != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
            cfg.insert("Env".into(), json!(env));
        }
        "LABEL" => {
            let ps = pairs(rest, "LABEL")?;
            with_obj(cfg, "Labels", |labels| {
                for (k, v) in ps {
                    labels.insert(k, json!(v));
                }
                Ok(())
            })?;
        }
        "EXPOSE" => with_obj(cfg, "ExposedPorts", |ports| {
            for p in words(rest) {
                let p = if p.contains('/') {
                    p.to_ascii_lowercase()
                } else {
                    format!("{p}/tcp")
                };
                let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let ok_num = num
                    .split('-')
                    .all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
                if !ok_num || !matches!(proto, "tcp" | "udp" | "sctp") {
                    bail!("invalid containerPort: {num}");
                }
                ports.insert(p, json!({}));
            }
            Ok(())
        })?,
        "USER" => {
            if rest.is_empty() {
                bail!("USER requires exactly one argument");
            }
            cfg.insert("User".into(), json!(rest));
        }
        "WORKDIR" => {
            if rest.is_empty() {
                bail!("WORKDIR requires exactly one argument");
            }
            let w = unquote(rest);
            let w = if w.starts_with('/') {
                w
            } else {
                let cur = cfg
                    .get("WorkingDir")
                    .and_then(|v| v.as_str())
                    .unwrap_or("/");
                format!("{}/{w}", cur.trim_end_matches('/'))
            };
            cfg.insert("WorkingDir".into(), json!(w));
        }
        "VOLUME" => {
            let list: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest).map_err(|_| anyhow!("VOLUME: invalid JSON array"))?
            } else {
                words(rest).iter().map(|w| unquote(w)).collect()
            };
            if list.is_empty() {
                bail!("VOLUME requires at least one argument");
            }
            with_obj(cfg, "Volumes", |vols| {
                for v in list {
                    vols.insert(v, json!({}));
                }
                Ok(())
            })?;
        }
        "ONBUILD" => {
            if rest.is_empty() {
                bail!("ONBUILD requires at least one argument");
            }
            let first = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(first.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                bail!("{first} isn't allowed as an ONBUILD trigger");
            }
            let mut triggers: Vec<String> = cfg
                .get("OnBuild")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            triggers.push(rest.to_string());
            cfg.insert("OnBuild".into(), json!(triggers));
        }
        "STOPSIGNAL" => {
            if rest.is_empty() {
                bail!("STOPSIGNAL requires exactly one argument");
            }
            crate::engine::container::ops::parse_signal(rest)?;
            cfg.insert("StopSignal".into(), json!(rest));
        }
        "" => bail!("dockerfile parse error: empty change"),
        other => bail!("{} is not a valid change command", other),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("Env".into(), json!(["PATH=/bin", "A=1"]));
        for l in lines {
            apply(&mut m, l).unwrap();
        }
        m
    }

    #[test]
    fn instructions() {
        let m = run(&[
            r#"CMD ["echo","hi"]"#,
            "ENTRYPOINT /bin/true now",
            "ENV A=2 B=\"two words\"",
            "ENV C three",
            "EXPOSE 80 53/udp",
            "LABEL k=v \"x y\"=z",
            "USER nobody",
            "WORKDIR /srv",
            "WORKDIR app",
            "VOLUME /data /logs",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN echo hi",
        ]);
        assert_eq!(m["Cmd"], json!(["echo", "hi"]));
        assert_eq!(m["Entrypoint"], json!(["/bin/sh", "-c", "/bin/true now"]));
        assert_eq!(
            m["Env"],
            json!(["PATH=/bin", "A=2", "B=two words", "C=three"])
        );
        assert_eq!(m["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(m["Labels"], json!({"k": "v", "x y": "z"}));
        assert_eq!(m["User"], json!("nobody"));
        assert_eq!(m["WorkingDir"], json!("/srv/app"));
        assert_eq!(m["Volumes"], json!({"/data": {}, "/logs": {}}));
        assert_eq!(m["StopSignal"], json!("SIGINT"));
        assert_eq!(m["OnBuild"], json!(["RUN echo hi"]));
    }

    #[test]
    fn refused() {
        let mut m = Map::new();
        assert_eq!(
            apply(&mut m, "ADD . /").unwrap_err().to_string(),
            "ADD is not a valid change command"
        );
        assert!(apply(&mut m, "EXPOSE http").is_err());
        assert!(apply(&mut m, "STOPSIGNAL NOPE").is_err());
        assert!(apply(&mut m, "ENV").is_err());
        assert!(apply(&mut m, "ONBUILD FROM x").is_err());
    }
}
