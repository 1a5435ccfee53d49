//! The benchmark's figures: per-phase process usage from the sampler's readings, the machine
//! it ran on, and the Markdown table printed at the end (the JSON is built next to it).

use serde_json::{Value, json};

use crate::sampler::{Sample, Sampler};

/// 100 MB (decimal), the target for each service's resident memory, in KiB.
pub const SERVICE_RSS_TARGET_KIB: u64 = 100_000_000 / 1024;

/// How much of the machine one watched process used in one phase.
#[derive(Debug, Clone)]
pub struct Usage {
    /// The process's name.
    pub name: String,
    /// CPU time over wall time, in % of one core (up to 100 × cores).
    pub cpu_percent: f64,
    /// The highest `VmRSS` sampled during the phase, KiB (0: not measured).
    pub rss_max_kib: u64,
}

/// CPU of the whole machine and of each watched process between `from` and `to`, and the
/// highest RSS sampled in between.
pub fn usage(sampler: &Sampler, from: &Sample, to: &Sample, ticks_per_second: f64) -> Vec<Usage> {
    let wall = to.at.duration_since(from.at).as_secs_f64().max(1e-9);
    let percent = |ticks: u64| ticks as f64 / ticks_per_second / wall * 100.0;
    let within = sampler.between(from, to);
    let mut usage: Vec<Usage> = sampler
        .watched()
        .iter()
        .enumerate()
        .map(|(i, watched)| Usage {
            name: watched.name.clone(),
            cpu_percent: percent(to.cpu_ticks[i].saturating_sub(from.cpu_ticks[i])),
            rss_max_kib: within.iter().map(|s| s.rss_kib[i]).max().unwrap_or(0),
        })
        .collect();
    let machine = percent(to.machine.0.saturating_sub(from.machine.0));
    let watched: f64 = usage.iter().map(|u| u.cpu_percent).sum();
    usage.push(Usage {
        name: "everything else on the machine".to_owned(),
        cpu_percent: (machine - watched).max(0.0),
        rss_max_kib: 0,
    });
    usage.push(Usage {
        name: "machine (all processes)".to_owned(),
        cpu_percent: machine,
        rss_max_kib: 0,
    });
    usage
}

/// Seconds after `origin` at which each counter had grown by `rows` since `from` (`None` if
/// it never did before `to`).
pub fn stage_seconds(
    sampler: &Sampler,
    from: &Sample,
    to: &Sample,
    origin: std::time::Instant,
    rows: i64,
) -> Vec<(&'static str, Option<f64>)> {
    let within = sampler.between(from, to);
    sampler
        .counters()
        .iter()
        .enumerate()
        .map(|(i, counter)| {
            let base = from.counters[i].unwrap_or(0.0);
            let done = within
                .iter()
                .find(|s| s.counters[i].is_some_and(|v| v - base >= rows as f64))
                .map(|s| s.at.saturating_duration_since(origin).as_secs_f64());
            (counter.stage, done)
        })
        .collect()
}

/// Usage as JSON: `{ name: { cpu_percent_of_one_core, rss_max_mb } }`.
pub fn usage_json(usage: &[Usage]) -> Value {
    let map = usage.iter().map(|u| {
        let mut entry = json!({ "cpu_percent_of_one_core": round1(u.cpu_percent) });
        if u.rss_max_kib > 0 {
            entry["rss_max_mb"] = json!(round1(mb(u.rss_max_kib)));
        }
        (u.name.clone(), entry)
    });
    Value::Object(map.collect())
}

/// KiB as MB (10^6 bytes), the unit of the targets.
pub fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// `x` rounded to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `x` rounded to two decimals.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The machine the benchmark ran on: CPU model, cores, memory, kernel and date.
pub fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let memory_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(0, usize::from),
        "memory_gib": round1(memory_kib as f64 / 1024.0 / 1024.0),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "load_average_at_start": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "date": chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
    })
}

/// `n` with thousands separators (`52,000`).
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "met" or "**not met**".
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

/// The per-process table: CPU and RSS in each phase, and each process's peak RSS.
pub fn process_table(phases: &[(&str, &[Usage])], peaks_kib: &[(String, u64)]) -> Vec<String> {
    let mut header = "| process |".to_owned();
    let mut rule = "|---|".to_owned();
    for (phase, _) in phases {
        header.push_str(&format!(
            " {phase}: CPU, % of one core | {phase}: max RSS, MB |"
        ));
        rule.push_str("---|---|");
    }
    header.push_str(" peak RSS (VmHWM), MB |");
    rule.push_str("---|");
    let mut lines = vec![header, rule];
    let Some((_, first)) = phases.first() else {
        return lines;
    };
    for (i, process) in first.iter().enumerate() {
        let mut line = format!("| {} |", process.name);
        for (_, usage) in phases {
            let u = &usage[i];
            let rss = if u.rss_max_kib > 0 {
                format!("{:.0}", mb(u.rss_max_kib))
            } else {
                "—".to_owned()
            };
            line.push_str(&format!(" {:.0} | {rss} |", u.cpu_percent));
        }
        let peak = peaks_kib
            .iter()
            .find(|(name, _)| *name == process.name)
            .map_or("—".to_owned(), |(_, kib)| format!("{:.0}", mb(*kib)));
        line.push_str(&format!(" {peak} |"));
        lines.push(line);
    }
    lines
}
