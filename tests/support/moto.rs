//! A real moto server (an AWS-compatible API on loopback) for tests.
//!
//! `MotoServer::start()` runs `moto_server` from `CAIRN_MOTO_SERVER` or the
//! project's `.venv` (made by `scripts/moto-venv`) on a free loopback port
//! and waits until it answers. The server is killed when the value drops,
//! and a small watchdog kills it if the test process dies first (so a
//! server kept in a `static` does not outlive its test binary). A missing
//! server is a test failure, never a skip.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MotoServer {
    child: Child,
    watchdog: Option<Child>,
    port: u16,
    log: PathBuf,
}

/// Where `moto_server` is: `CAIRN_MOTO_SERVER`, else `<project>/.venv/bin/moto_server`.
pub fn moto_server_path() -> PathBuf {
    match std::env::var_os("CAIRN_MOTO_SERVER") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"),
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// One raw HTTP/1.1 request to 127.0.0.1:port; the status code, if any.
fn http(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    text.strip_prefix("HTTP/1.")?
        .get(2..5)
        .and_then(|s| s.parse().ok())
}

impl MotoServer {
    /// Starts a server on a free port; panics (failing the test) if it
    /// cannot be started or does not answer within 30 s.
    pub fn start() -> MotoServer {
        let exe = moto_server_path();
        assert!(
            exe.exists(),
            "moto_server not found at {}: run `bash scripts/moto-venv` (or set CAIRN_MOTO_SERVER)",
            exe.display()
        );
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("cairn-moto-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).expect("create moto log file");
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .env("MOTO_ECS_SERVICE_RUNNING", "1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        // Kill the server if this process goes away without dropping it.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {parent} 2>/dev/null && kill -0 {moto} 2>/dev/null; do sleep 1; done; kill {moto} 2>/dev/null",
                parent = std::process::id(),
                moto = child.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let mut server = MotoServer {
            child,
            watchdog,
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http(port, "GET", "/moto-api/").is_some() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "moto_server exited with {status} before answering:\n{}",
                    server.log_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "moto_server did not answer on port {port} within 30 s:\n{}",
                    server.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forgets every object in every service (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let status = http(self.port, "POST", "/moto-api/reset");
        assert_eq!(status, Some(200), "moto reset failed:\n{}", self.log_tail());
    }

    /// Environment that points the AWS SDK (or the cairn binary) at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &mut self.watchdog {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
