//! Service binaries run as real processes, as an operator would run them.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// glibc's allocator settings the image sets (`Dockerfile`), so that a service under test uses
/// memory as it does when deployed: two malloc arenas rather than eight per core, and blocks
/// of 128 KiB or more mapped of their own and returned when freed (glibc otherwise raises that
/// threshold to the largest block freed so far, up to 32 MiB, and such blocks then stay in the
/// heap). A variable already set in this process's environment is left as it is.
pub const IMAGE_MALLOC_ENV: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
];

/// A running service process with its output captured to files.
pub struct ServiceProcess {
    child: Child,
    output_dir: tempfile::TempDir,
    /// Its gRPC control address.
    pub grpc: SocketAddr,
    /// Its metrics address.
    pub metrics: SocketAddr,
}

/// Result of a process that ran to its end.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Finished {
    /// Standard output and error together.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl ServiceProcess {
    /// Starts `binary` with `config` (TOML text), [`IMAGE_MALLOC_ENV`] and extra environment
    /// variables.
    pub fn spawn(
        binary: &Path,
        config: &str,
        env: &[(&str, &str)],
        grpc: SocketAddr,
        metrics: SocketAddr,
    ) -> ServiceProcess {
        let output_dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let config_path = output_dir.path().join("service.toml");
        std::fs::write(&config_path, config).expect("cannot write the service config");
        let stdout = std::fs::File::create(output_dir.path().join("stdout")).expect("stdout file");
        let stderr = std::fs::File::create(output_dir.path().join("stderr")).expect("stderr file");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .envs(
                IMAGE_MALLOC_ENV
                    .into_iter()
                    .filter(|(name, _)| std::env::var_os(name).is_none()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        ServiceProcess {
            child,
            output_dir,
            grpc,
            metrics,
        }
    }

    /// Waits until the gRPC port accepts connections; panics with the output on timeout or exit.
    pub fn wait_until_listening(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("service exited early with {status}:\n{}", self.output());
            }
            // The port answering is not enough: something else may hold it (then this service
            // fails to bind and exits). Its own "started" line names the address it bound.
            if TcpStream::connect_timeout(&self.grpc, Duration::from_millis(200)).is_ok()
                && self
                    .output()
                    .contains(&format!("\"grpc\":\"{}\"", self.grpc))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "service not listening on {} after {timeout:?}:\n{}",
            self.grpc,
            self.output()
        );
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(
            matches!(sent, Ok(s) if s.success()),
            "cannot send SIGTERM to {pid}"
        );
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "service did not stop within {timeout:?} of SIGTERM:\n{}",
            self.output()
        );
    }

    /// The configuration file the process was started with (rewrite it to test reloads).
    pub fn config_path(&self) -> PathBuf {
        self.output_dir.path().join("service.toml")
    }

    /// `(peak, current)` resident memory of the process in KiB (`VmHWM`, `VmRSS`).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (`kill -9`: no clean-up of any kind) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How the process ended, if it has (without waiting).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Everything the process wrote so far, stdout then stderr.
    pub fn output(&self) -> String {
        let read = |name: &str| {
            std::fs::read_to_string(self.output_dir.path().join(name)).unwrap_or_default()
        };
        format!("{}{}", read("stdout"), read("stderr"))
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `binary` with `config` until it exits by itself (e.g. on a configuration error).
pub fn run_to_exit(
    binary: &Path,
    config: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Finished {
    let unused = crate::ports::free_local_addr();
    let mut process = ServiceProcess::spawn(binary, config, env, unused, unused);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = process.child.try_wait() {
            let read = |name: &str| {
                std::fs::read_to_string(process.output_dir.path().join(name)).unwrap_or_default()
            };
            return Finished {
                status,
                stdout: read("stdout"),
                stderr: read("stderr"),
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} did not exit within {timeout:?}:\n{}",
        binary.display(),
        process.output()
    );
}

/// Path of a workspace binary, built by `cargo build --bins` next to the test executable.
pub fn workspace_binary(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("cannot find the test executable");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable is not inside target/<profile>/deps");
    let binary = profile_dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, which `make test` does)",
        binary.display()
    );
    binary
}

/// Waits until `check` holds, polling; panics with `what` and the process's output otherwise.
pub async fn eventually<F, Fut>(
    what: &str,
    process: &ServiceProcess,
    timeout: Duration,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}\n{}",
            process.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
