//! A real PostgreSQL server for tests: `initdb` in a temporary folder, `pg_ctl start` on a
//! free loopback port (its socket in the same folder), trust authentication for the user
//! `mnemo`, stopped (immediately) when dropped. Run as root, PostgreSQL's own tools refuse to
//! work, so they run as the `postgres` user that Debian's package creates.
//!
//! Without `initdb`, [`Postgres::start`] says so on stderr and returns `None` (tests skip),
//! unless `MNEMO_REQUIRE_POSTGRES=1` (set by `make test`, hence CI), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What PostgreSQL logs when its port is taken.
const PORT_TAKEN: &str = "Address already in use";

pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    run_as: Option<&'static str>,
    running: bool,
}

impl Postgres {
    /// A new server, started and accepting connections; `None` when PostgreSQL is not
    /// installed and the run does not require it.
    pub fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            if std::env::var("MNEMO_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("MNEMO_REQUIRE_POSTGRES=1 but no initdb (install Debian's `postgresql`)");
            }
            eprintln!(
                "SKIPPED: no PostgreSQL to test against (no initdb on PATH or under \
                 /usr/lib/postgresql). MNEMO_REQUIRE_POSTGRES=1 makes this a failure."
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("mnemo-postgres-")
            .tempdir()
            .expect("a temporary folder");
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as
            && let Err(reason) = run(Command::new("chown").arg(user).arg(dir.path()), "chown")
        {
            panic!("{reason}");
        }
        let mut server = Self {
            bin,
            dir,
            port: crate::free_port(),
            run_as,
            running: false,
        };
        let data = server.data();
        server.tool(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "mnemo",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
        );
        server.launch();
        Some(server)
    }

    /// `postgres://mnemo@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://mnemo@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again, after [`Self::kill`], on the same data and port) and waits
    /// until it accepts connections.
    pub fn restart(&mut self) {
        if let Err(reason) = self.try_start() {
            panic!("{reason}");
        }
    }

    /// The first start: when the port chosen free was taken by another process before the
    /// server bound it (tests run in parallel), another port is tried.
    fn launch(&mut self) {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            match self.try_start() {
                Ok(()) => return,
                Err(reason) if reason.contains(PORT_TAKEN) && attempt < ATTEMPTS => {
                    self.port = crate::free_port();
                }
                Err(reason) => panic!("{reason}"),
            }
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        let data = self.data();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let log_offset = std::fs::metadata(&log).map_or(0, |m| m.len());
        let log_text = || {
            let bytes = std::fs::read(&log).unwrap_or_default();
            let from = usize::try_from(log_offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            String::from_utf8_lossy(&bytes[from..]).into_owned()
        };
        let log_arg = log.display().to_string();
        if let Err(reason) = self.try_tool(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log_arg, "-w", "start"],
        ) {
            return Err(format!("{reason}\n{}", log_text()));
        }
        self.running = true;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!("PostgreSQL did not listen: {}", log_text()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn kill(&mut self) {
        if self.running {
            let data = self.data();
            self.tool("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
            self.running = false;
        }
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn tool(&self, name: &str, args: &[&str]) {
        if let Err(reason) = self.try_tool(name, args) {
            panic!("{reason}");
        }
    }

    fn try_tool(&self, name: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(name);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        command.args(args).current_dir(self.dir.path());
        run(&mut command, name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run(command: &mut Command, name: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|err| format!("cannot run {name}: {err}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{name} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// The folder of `initdb` and `pg_ctl`: beside `initdb` on PATH, else the newest of Debian's
/// `/usr/lib/postgresql/N/bin`.
fn bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|folder| folder.join("initdb"))
            .find(|candidate| candidate.is_file())
    });
    if let Some(initdb) = on_path {
        let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        return initdb.parent().map(Path::to_owned);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}
