//! Real Qdrant servers for tests and benchmarks: one node or a 3-node cluster on free loopback
//! ports in a temporary folder, started from the server binary in the shared folder
//! (`../shared/qdrant/qdrant.xz`, unpacked once and checked against its SHA-256), waited for
//! until ready, and killed when dropped.
//!
//! Without the binary, [`qdrant_binary`] says so on stderr and tests skip, unless
//! `MNEMO_REQUIRE_QDRANT=1` (set by `make test`, hence CI), where a missing binary fails.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod postgres;
pub use postgres::Postgres;

const STARTUP: Duration = Duration::from_secs(60);
/// What Qdrant logs when a port it was given is taken.
const PORT_TAKEN: &str = "Address already in use";

/// The shared folder: `MNEMO_SHARED_DIR`, or `shared/` beside the workspace.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("MNEMO_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The unpacked, verified server binary; `None` (with the reason on stderr) when the shared
/// folder has none and the run does not require it.
pub fn qdrant_binary() -> Option<PathBuf> {
    match unpack() {
        Ok(path) => Some(path),
        Err(reason) => {
            if std::env::var("MNEMO_REQUIRE_QDRANT").is_ok_and(|v| v == "1") {
                panic!("MNEMO_REQUIRE_QDRANT=1 but no Qdrant server: {reason}");
            }
            eprintln!(
                "SKIPPED: no Qdrant server to test against ({reason}). Put the shared folder at \
                 ../shared or set MNEMO_SHARED_DIR; MNEMO_REQUIRE_QDRANT=1 makes this a failure."
            );
            None
        }
    }
}

fn unpack() -> Result<PathBuf, String> {
    let folder = shared_dir().join("qdrant");
    let archive = folder.join("qdrant.xz");
    if !archive.is_file() {
        return Err(format!("{} does not exist", archive.display()));
    }
    let sums = fs::read_to_string(folder.join("SHA256SUMS"))
        .map_err(|e| format!("{}: {e}", folder.join("SHA256SUMS").display()))?;
    let expected = sums
        .lines()
        .find_map(|line| {
            let (sum, name) = line.split_once(char::is_whitespace)?;
            (name.trim() == "qdrant").then(|| sum.to_owned())
        })
        .ok_or("SHA256SUMS has no line for `qdrant`")?;
    let cache = std::env::temp_dir().join(format!("mnemo-qdrant-{}", &expected[..16]));
    let binary = cache.join("qdrant");
    if binary.is_file() {
        return Ok(binary);
    }
    fs::create_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    // Unpacked beside and renamed: tests running at once never see half a binary.
    let partial = cache.join(format!("qdrant.{}.partial", std::process::id()));
    let output = fs::File::create(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
    let status = Command::new("xz")
        .arg("-dc")
        .arg(&archive)
        .stdout(output)
        .status()
        .map_err(|e| format!("cannot run xz (install xz-utils): {e}"))?;
    if !status.success() {
        return Err(format!("xz -dc {} failed: {status}", archive.display()));
    }
    let sum = Command::new("sha256sum")
        .arg(&partial)
        .output()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    let found = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    if found != expected {
        let _ = fs::remove_file(&partial);
        return Err(format!(
            "the unpacked server's SHA-256 is {found}, SHA256SUMS says {expected}"
        ));
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    fs::rename(&partial, &binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    Ok(binary)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One Qdrant process. Killed (SIGKILL) when dropped.
pub struct QdrantNode {
    binary: PathBuf,
    dir: PathBuf,
    pub http_port: u16,
    pub grpc_port: u16,
    pub p2p_port: Option<u16>,
    bootstrap: Option<u16>,
    child: Option<Child>,
}

impl QdrantNode {
    fn new(binary: &Path, dir: PathBuf, p2p: bool, bootstrap: Option<u16>) -> Self {
        Self {
            binary: binary.to_owned(),
            dir,
            http_port: free_port(),
            grpc_port: free_port(),
            p2p_port: p2p.then(free_port),
            bootstrap,
            child: None,
        }
    }

    /// `qdrant://127.0.0.1:GRPC`: what mnemo's `--store` takes.
    pub fn location(&self) -> String {
        format!("qdrant://127.0.0.1:{}", self.grpc_port)
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Starts the process (again, after [`kill`](Self::kill), on the same storage and ports).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "node already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("qdrant.log"))
            .expect("node log");
        let mut command = Command::new(&self.binary);
        command
            .current_dir(&self.dir)
            .arg("--config-path")
            .arg(shared_dir().join("qdrant/config.yaml"))
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", self.http_port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", self.grpc_port.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", self.dir.join("storage"))
            .env(
                "QDRANT__STORAGE__SNAPSHOTS_PATH",
                self.dir.join("snapshots"),
            )
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .env("QDRANT__LOG_LEVEL", "WARN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if let Some(p2p) = self.p2p_port {
            command
                .env("QDRANT__CLUSTER__ENABLED", "true")
                .env("QDRANT__CLUSTER__P2P__PORT", p2p.to_string())
                .arg("--uri")
                .arg(format!("http://127.0.0.1:{p2p}"));
            if let Some(first) = self.bootstrap {
                command
                    .arg("--bootstrap")
                    .arg(format!("http://127.0.0.1:{first}"));
            }
        }
        self.child = Some(command.spawn().expect("start qdrant"));
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The last lines of the node's log, for a failure message.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("qdrant.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// GET `path` on the node's REST port; the JSON answer, or `None`.
    pub fn get(&self, path: &str) -> Option<Value> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        let response = client.get(format!("{}{path}", self.http())).send().ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().ok()
    }

    /// Waits until the node answers `/readyz`.
    pub fn wait_ready(&mut self) {
        if let Err(reason) = self.wait_until_ready(0) {
            panic!("{reason}");
        }
    }

    /// Starts a new node and waits for it; when a port chosen free was taken by another
    /// process before Qdrant bound it (tests run in parallel), picks other ports and tries
    /// again. Qdrant logs that bind error and keeps running, so the log is what tells.
    fn launch(&mut self) {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let log_offset = fs::metadata(self.dir.join("qdrant.log")).map_or(0, |m| m.len());
            self.start();
            match self.wait_until_ready(log_offset) {
                Ok(()) => return,
                Err(reason) if reason.contains(PORT_TAKEN) && attempt < ATTEMPTS => {
                    self.kill();
                    self.http_port = free_port();
                    self.grpc_port = free_port();
                    if self.p2p_port.is_some() {
                        self.p2p_port = Some(free_port());
                    }
                }
                Err(reason) => panic!("{reason}"),
            }
        }
    }

    fn wait_until_ready(&mut self, log_offset: u64) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < STARTUP {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("qdrant exited with {status}:\n{}", self.log_tail()));
            }
            let ready = reqwest::blocking::Client::new()
                .get(format!("{}/readyz", self.http()))
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if self.log_since(log_offset).contains(PORT_TAKEN) {
                return Err(format!(
                    "qdrant could not bind its ports:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "qdrant not ready after {} s:\n{}",
            STARTUP.as_secs(),
            self.log_tail()
        ))
    }

    fn log_since(&self, offset: u64) -> String {
        let log = fs::read(self.dir.join("qdrant.log")).unwrap_or_default();
        let from = usize::try_from(offset).unwrap_or(usize::MAX).min(log.len());
        String::from_utf8_lossy(&log[from..]).into_owned()
    }

    /// The peers this node's `/cluster` lists.
    pub fn peer_count(&self) -> usize {
        self.get("/cluster")
            .and_then(|v| v["result"]["peers"].as_object().map(|p| p.len()))
            .unwrap_or(0)
    }
}

impl Drop for QdrantNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One node or several forming a cluster, in a temporary folder removed on drop.
pub struct Qdrant {
    pub nodes: Vec<QdrantNode>,
    _dir: tempfile::TempDir,
}

impl Qdrant {
    /// One node, ready; `None` when there is no binary (see [`qdrant_binary`]).
    pub fn single() -> Option<Self> {
        let binary = qdrant_binary()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let node_dir = dir.path().join("node");
        fs::create_dir_all(&node_dir).expect("node dir");
        let mut node = QdrantNode::new(&binary, node_dir, false, None);
        node.launch();
        Some(Self {
            nodes: vec![node],
            _dir: dir,
        })
    }

    /// `size` nodes in distributed mode, the first bootstrapping the others, ready once
    /// every node's `/cluster` lists all of them.
    pub fn cluster(size: usize) -> Option<Self> {
        let binary = qdrant_binary()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes: Vec<QdrantNode> = Vec::with_capacity(size);
        for index in 0..size {
            let node_dir = dir.path().join(format!("node{index}"));
            fs::create_dir_all(&node_dir).expect("node dir");
            let bootstrap = nodes.first().and_then(|first| first.p2p_port);
            let mut node = QdrantNode::new(&binary, node_dir, true, bootstrap);
            node.launch();
            nodes.push(node);
        }
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_for_peers(STARTUP);
        Some(cluster)
    }

    /// Waits until every running node lists every node as a peer.
    pub fn wait_for_peers(&self, within: Duration) {
        let start = Instant::now();
        let size = self.nodes.len();
        while start.elapsed() < within {
            if self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .all(|n| n.peer_count() == size)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let logs: Vec<String> = self.nodes.iter().map(|n| n.log_tail()).collect();
        panic!(
            "the cluster did not form in {} s:\n{}",
            within.as_secs(),
            logs.join("\n---\n")
        );
    }

    /// Every node's gRPC address, for `--store`.
    pub fn location(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.grpc_port))
            .collect();
        format!("qdrant://{}", hosts.join(","))
    }

    /// Writes a line to stderr and flushes, so progress is visible in a long test.
    pub fn note(message: &str) {
        let mut err = std::io::stderr();
        let _ = writeln!(err, "{message}");
        let _ = err.flush();
    }
}
