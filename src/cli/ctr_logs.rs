//! `logs`: the json-file log, stdout to stdout and stderr to stderr.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};

use super::container_args::LogsArgs;
use super::Ctx;
use crate::engine::container::logs::{read_from, rfc3339_nano, Entry};
use crate::engine::container::{liveness, ContainerStore};

/// docker's `--since`/`--until`: RFC 3339, unix seconds, or a duration
/// ago (`10m`, `1h30m`, `5s`).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = s.parse::<f64>() {
        let ns = (secs * 1e9) as i64;
        return Ok(DateTime::from_timestamp_nanos(ns));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num
            .parse()
            .map_err(|_| anyhow!("invalid value for \"since\": {s}"))?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(anyhow!("invalid value for \"since\": {s}")),
        };
    }
    if !num.is_empty() {
        return Err(anyhow!("invalid value for \"since\": {s}"));
    }
    Ok(now - chrono::Duration::milliseconds((total * 1000.0) as i64))
}

fn print(e: &Entry, ts: bool) {
    let line = if ts {
        format!("{} {}", rfc3339_nano(&e.time), e.log)
    } else {
        e.log.clone()
    };
    if e.stream == "stderr" {
        let _ = std::io::stderr().write_all(line.as_bytes());
    } else {
        let mut o = std::io::stdout();
        let _ = o.write_all(line.as_bytes());
        let _ = o.flush();
    }
}

pub fn logs(ctx: &Ctx, a: LogsArgs) -> Result<()> {
    let cs = ContainerStore::new(ctx.paths());
    let id = cs.resolve(&a.container)?;
    let now = Utc::now();
    let since = a.since.as_deref().map(|s| parse_time(s, now)).transpose()?;
    let until = a.until.as_deref().map(|s| parse_time(s, now)).transpose()?;
    let path = cs.log_path(&id);
    let (mut entries, mut off) =
        read_from(&path, 0).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    entries.retain(|e| since.is_none_or(|s| e.time >= s) && until.is_none_or(|u| e.time <= u));
    if a.tail != "all" {
        let n: usize = a.tail.parse().unwrap_or(usize::MAX);
        if entries.len() > n {
            entries.drain(..entries.len() - n);
        }
    }
    for e in &entries {
        print(e, a.timestamps);
    }
    if !a.follow {
        return Ok(());
    }
    loop {
        let running = liveness::current(&cs, &id)
            .map(|s| s.running())
            .unwrap_or(false);
        let (more, o) = read_from(&path, off).unwrap_or((vec![], off));
        off = o;
        for e in &more {
            if until.is_some_and(|u| e.time > u) {
                return Ok(());
            }
            print(e, a.timestamps);
        }
        if !running && more.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
