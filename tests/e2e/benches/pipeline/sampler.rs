//! What the benchmark watches while it runs: each process's CPU time and resident memory
//! (from `/proc`), the machine's busy time (`/proc/stat`), and each stage's progress counter
//! (from the services' `/metrics`), sampled on a thread of its own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a watched process's figures are read.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// One process.
    Process(u32),
    /// A parent and its live children (PostgreSQL's postmaster and its backends); CPU only,
    /// as their resident sets share memory. Children that exited are counted in the parent's
    /// `cutime`.
    Tree(u32),
}

/// A process (or tree) the benchmark reports on.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The name in the report.
    pub name: String,
    /// Where its figures come from.
    pub source: Source,
}

/// A progress counter: the sum of every series of `metric` on a service's `/metrics`.
#[derive(Debug, Clone)]
pub struct Counter {
    /// The stage's name in the report.
    pub stage: &'static str,
    /// The service's metrics address.
    pub addr: SocketAddr,
    /// The metric's name.
    pub metric: &'static str,
}

/// One reading of everything.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// CPU time of each watched process so far, in clock ticks.
    pub cpu_ticks: Vec<u64>,
    /// `VmRSS` of each watched process, KiB (0 for a tree).
    pub rss_kib: Vec<u64>,
    /// `VmHWM` (peak RSS) of each watched process, KiB (0 for a tree).
    pub peak_kib: Vec<u64>,
    /// The machine's busy and total time over all cores, in clock ticks.
    pub machine: (u64, u64),
    /// Each counter's value (`None` when the scrape failed).
    pub counters: Vec<Option<f64>>,
}

/// What to sample, shared with the sampling thread.
struct Targets {
    watched: Vec<Watched>,
    counters: Vec<Counter>,
}

impl Targets {
    fn sample(&self) -> Sample {
        let memory: Vec<(u64, u64)> = self.watched.iter().map(|w| memory_kib(w.source)).collect();
        Sample {
            at: Instant::now(),
            cpu_ticks: self.watched.iter().map(|w| cpu_ticks(w.source)).collect(),
            rss_kib: memory.iter().map(|m| m.0).collect(),
            peak_kib: memory.iter().map(|m| m.1).collect(),
            machine: machine_ticks(),
            counters: self
                .counters
                .iter()
                .map(|c| scrape_sum(c.addr, c.metric))
                .collect(),
        }
    }
}

/// Samples on its own thread every `every` until stopped; phases take extra samples at their
/// boundaries with [`Sampler::now`].
pub struct Sampler {
    targets: Arc<Targets>,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `watched` and `counters`.
    pub fn start(watched: Vec<Watched>, counters: Vec<Counter>, every: Duration) -> Sampler {
        let targets = Arc::new(Targets { watched, counters });
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (targets, samples, stop) = (targets.clone(), samples.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let sample = targets.sample();
                    samples.lock().unwrap().push(sample);
                    std::thread::sleep(every);
                }
            })
        };
        Sampler {
            targets,
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The watched processes, in the order of every sample's vectors.
    pub fn watched(&self) -> &[Watched] {
        &self.targets.watched
    }

    /// The counters, in the order of every sample's `counters`.
    pub fn counters(&self) -> &[Counter] {
        &self.targets.counters
    }

    /// Takes a sample now (and keeps it with the others).
    pub fn now(&self) -> Sample {
        let sample = self.targets.sample();
        self.samples.lock().unwrap().push(sample.clone());
        sample
    }

    /// Every sample taken from `from` to `to`, in time order.
    pub fn between(&self, from: &Sample, to: &Sample) -> Vec<Sample> {
        let mut within: Vec<Sample> = self
            .samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.at >= from.at && s.at <= to.at)
            .cloned()
            .collect();
        within.sort_by_key(|s| s.at);
        within
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Clock ticks per second of `/proc`'s CPU times (`getconf CLK_TCK`, 100 on Linux if unknown).
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `(ppid, utime + stime, cutime + cstime)` of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let fields: Vec<&str> = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ppid = u32::try_from(number(1)?).ok()?;
    Some((ppid, number(11)? + number(12)?, number(13)? + number(14)?))
}

fn cpu_ticks(source: Source) -> u64 {
    match source {
        Source::Process(pid) => stat(pid).map_or(0, |(_, own, _)| own),
        Source::Tree(parent) => {
            let own = stat(parent).map_or(0, |(_, own, reaped)| own + reaped);
            own + children(parent)
                .iter()
                .filter_map(|pid| stat(*pid))
                .map(|(_, own, _)| own)
                .sum::<u64>()
        }
    }
}

/// The live children of `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(ppid, _, _)| ppid == parent))
        .collect()
}

/// `(VmRSS, VmHWM)` in KiB; zeros for a tree.
fn memory_kib(source: Source) -> (u64, u64) {
    let Source::Process(pid) = source else {
        return (0, 0);
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `(busy, total)` clock ticks of all cores together, from the `cpu` line of `/proc/stat`.
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let total: u64 = ticks.iter().take(8).sum();
    // Fields 4 and 5 are idle and iowait.
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The sum of every series of `metric` a service serves on `addr`, or `None`.
fn scrape_sum(addr: SocketAddr, metric: &str) -> Option<f64> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let series = response.lines().filter(|line| {
        line.strip_prefix(metric)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    });
    Some(
        series
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}
