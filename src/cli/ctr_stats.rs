//! `berth stats`: docker's table (or `--format`) of CPU %, memory, network,
//! block I/O and pids per container, from two samples a second apart.
//! Streaming redraws the screen on a terminal and prints plain tables
//! otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use super::ctr_more_args::StatsArgs;
use super::format::{render_list, ListFormat};
use super::Ctx;
use crate::engine::container::stats::{self, Sample};
use crate::engine::container::{liveness, ContainerStore};

const TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// go-units `BytesSize`: binary units, `%.4g`.
pub fn bytes_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1024.0 && i < UNITS.len() - 1 {
        s /= 1024.0;
        i += 1;
    }
    format!("{}{}", gotemplate::format_float_g(s, 4), UNITS[i])
}

fn header() -> Value {
    json!({
        "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME",
        "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
        "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

struct Target {
    /// What the user typed (docker's `.Container`), else the short ID.
    given: String,
    id: String,
    full: String,
    name: String,
}

/// One row from two samples; `None` for a container that is not running
/// (docker prints zeros for those under `-a`).
pub fn row(given: &str, id: &str, name: &str, pair: Option<(&Sample, &Sample)>) -> Value {
    let dec = |v: u64| super::units::human_size_with_precision(v as f64, 3);
    match pair {
        Some((prev, cur)) => json!({
            "BlockIO": format!("{} / {}", dec(cur.blk_read), dec(cur.blk_write)),
            "CPUPerc": format!("{:.2}%", stats::cpu_percent(prev, cur)),
            "Container": given,
            "ID": id,
            "MemPerc": format!("{:.2}%", stats::mem_percent(cur)),
            "MemUsage": format!("{} / {}", bytes_size(cur.mem_usage as f64), bytes_size(cur.mem_limit as f64)),
            "Name": name,
            "NetIO": format!("{} / {}", dec(cur.net_rx), dec(cur.net_tx)),
            "PIDs": cur.pids.to_string(),
        }),
        None => json!({
            "BlockIO": "0B / 0B", "CPUPerc": "0.00%", "Container": given, "ID": id,
            "MemPerc": "0.00%", "MemUsage": "0B / 0B", "Name": name,
            "NetIO": "0B / 0B", "PIDs": "0",
        }),
    }
}

fn targets(cs: &ContainerStore, a: &StatsArgs) -> Result<Vec<Target>> {
    let short = |id: &str| {
        if a.no_trunc {
            id.to_string()
        } else {
            id[..12.min(id.len())].to_string()
        }
    };
    if !a.containers.is_empty() {
        let mut v = Vec::new();
        for c in &a.containers {
            let id = cs.resolve(c)?;
            let rec = cs.load(&id)?;
            v.push(Target {
                given: c.clone(),
                id: short(&id),
                full: id.clone(),
                name: rec.name,
            });
        }
        return Ok(v);
    }
    let mut recs = cs.list()?;
    recs.sort_by_key(|r| std::cmp::Reverse(r.created));
    let mut v = Vec::new();
    for r in recs {
        let running = liveness::current(cs, &r.id).is_ok_and(|s| s.running());
        if a.all || running {
            v.push(Target {
                given: short(&r.id),
                id: short(&r.id),
                full: r.id.clone(),
                name: r.name,
            });
        }
    }
    Ok(v)
}

/// A sample of a running container, `None` otherwise.
fn take(cs: &ContainerStore, id: &str) -> Option<Sample> {
    let st = liveness::current(cs, id).ok()?;
    if !st.running() || st.pid <= 0 {
        return None;
    }
    let cg = cs.runtime().cgroup(id).ok()?;
    let host_net = cs
        .load(id)
        .is_ok_and(|r| r.host_config.network_mode == "host");
    Some(stats::sample(&cg, st.pid, !host_net))
}

pub fn stats_cmd(ctx: &Ctx, a: StatsArgs) -> Result<()> {
    let cs = super::containers::containers(ctx);
    let fmt = ListFormat::parse(a.format.as_deref(), TABLE);
    let mut given = targets(&cs, &a)?;
    let mut full_ids: Vec<String> = given.iter().map(|t| t.full.clone()).collect();
    let mut prev: HashMap<String, Sample> = HashMap::new();
    for id in &full_ids {
        if let Some(s) = take(&cs, id) {
            prev.insert(id.clone(), s);
        }
    }
    let tty = std::io::stdout().is_terminal();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        // Without names docker follows the set of containers: new ones
        // appear, stopped ones leave (unless -a).
        if a.containers.is_empty() && !a.no_stream {
            given = targets(&cs, &a)?;
            full_ids = given.iter().map(|t| t.full.clone()).collect();
        }
        let mut rows = Vec::new();
        for (t, id) in given.iter().zip(&full_ids) {
            let cur = take(&cs, id);
            let r = match (&cur, prev.get(id)) {
                (Some(c), Some(p)) => row(&t.given, &t.id, &t.name, Some((p, c))),
                (Some(c), None) => row(&t.given, &t.id, &t.name, Some((c, c))),
                _ => row(&t.given, &t.id, &t.name, None),
            };
            rows.push(r);
            match cur {
                Some(c) => {
                    prev.insert(id.clone(), c);
                }
                None => {
                    prev.remove(id);
                }
            }
        }
        let body = render_list(&fmt, &header(), &rows)?;
        let mut out = std::io::stdout().lock();
        if tty && !a.no_stream {
            // docker's redraw: clear, home, the table.
            let _ = write!(out, "\x1b[2J\x1b[H");
        }
        if out.write_all(body.as_bytes()).is_err() {
            return Ok(());
        }
        let _ = out.flush();
        if a.no_stream {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sizes() {
        assert_eq!(bytes_size(0.0), "0B");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(bytes_size(100.0 * 1024.0 * 1024.0), "100MiB");
    }

    #[test]
    fn rows_as_docker_prints_them() {
        let a = Sample {
            online_cpus: 4,
            ..Default::default()
        };
        let b = Sample {
            cpu_total: 1_000_000_000,
            system: 4_000_000_000,
            online_cpus: 4,
            mem_usage: 1536 * 1024,
            mem_limit: 64 << 20,
            net_rx: 1500,
            net_tx: 0,
            blk_read: 4096,
            blk_write: 0,
            pids: 2,
        };
        let r = row("web", "0123456789ab", "web", Some((&a, &b)));
        assert_eq!(r["CPUPerc"], "100.00%");
        assert_eq!(r["MemUsage"], "1.5MiB / 64MiB");
        assert_eq!(r["MemPerc"], "2.34%");
        assert_eq!(r["NetIO"], "1.5kB / 0B");
        assert_eq!(r["BlockIO"], "4.1kB / 0B");
        assert_eq!(r["PIDs"], "2");
        let z = row("x", "y", "z", None);
        assert_eq!(z["MemUsage"], "0B / 0B");
    }
}
