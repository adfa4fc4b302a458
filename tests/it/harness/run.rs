//! Running a program (the drover binary, the testbed's kubectl, `scripts/testbed`) and
//! keeping what a failure needs: the command line, its directory, exit code, stdout,
//! stderr and, for a fixture, the listing of its tree (ripgrep's `tests/util.rs`
//! style).
//!
//! The drover binary always runs with a clean environment (`env_clear`): only
//! `NO_COLOR=1` and what the test passes (`KUBECONFIG`, `RUST_LOG`, …) reach it, so a
//! developer's `KUBECONFIG`, `RUST_LOG`, `POD_NAME` or `KUBERNETES_SERVICE_HOST`
//! cannot change a result.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::repo::listing;

/// `drover ARGS`, to configure and then [`Cmd::run`] or spawn: the binary cargo built
/// for these tests, with a clean environment holding only `NO_COLOR=1`, run in the
/// repository root.
pub fn drover(args: &[&str]) -> Cmd {
    Cmd::new(env!("CARGO_BIN_EXE_drover"), "drover")
        .clean_env()
        .env("NO_COLOR", "1")
        .args(args)
}

/// A command to run, built like [`std::process::Command`].
pub struct Cmd {
    program: PathBuf,
    name: String,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    clean: bool,
    cwd: PathBuf,
    stdin: Option<Vec<u8>>,
    tree: Option<PathBuf>,
    deadline: Option<Duration>,
    note: String,
}

impl Cmd {
    /// `program`, shown as `name` in reports; inherits the environment unless
    /// [`Cmd::clean_env`].
    pub fn new(program: impl AsRef<Path>, name: &str) -> Cmd {
        Cmd {
            program: program.as_ref().to_path_buf(),
            name: name.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            clean: false,
            cwd: PathBuf::from(super::ROOT),
            stdin: None,
            tree: None,
            deadline: None,
            note: String::new(),
        }
    }

    pub fn args<S: Into<OsString> + Clone>(mut self, args: &[S]) -> Cmd {
        self.args.extend(args.iter().cloned().map(Into::into));
        self
    }

    /// Starts from an empty environment.
    pub fn clean_env(mut self) -> Cmd {
        self.clean = true;
        self
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Cmd {
        self.env.push((k.into(), v.into()));
        self
    }

    /// `(name, value)` pairs, in order.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Cmd {
        for (k, v) in vars {
            self = self.env(*k, *v);
        }
        self
    }

    pub fn kubeconfig(self, path: impl AsRef<Path>) -> Cmd {
        self.env("KUBECONFIG", path.as_ref())
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.cwd = dir.as_ref().to_path_buf();
        self
    }

    /// Bytes to write to the command's stdin.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(input.into());
        self
    }

    /// The fixture tree a failure report lists.
    pub fn tree(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.tree = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Fails the test (after killing the command) if it runs longer: for a claim that
    /// a command never hangs, not a measurement.
    pub fn deadline(mut self, limit: Duration) -> Cmd {
        self.deadline = Some(limit);
        self
    }

    /// Said after the command line in reports, e.g. `(as the drover ServiceAccount)`.
    pub fn note(mut self, note: &str) -> Cmd {
        self.note = format!(" {note}");
        self
    }

    /// The command line as reports show it, with the variables the test set.
    pub fn describe(&self) -> String {
        let vars: Vec<String> = self
            .env
            .iter()
            .filter(|(k, _)| k != "NO_COLOR" && k != "KUBECONFIG")
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut s = vars.join(" ");
        if !s.is_empty() {
            s.push(' ');
        }
        format!("{s}{} {}{}", self.name, args.join(" "), self.note)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        if self.clean {
            c.env_clear();
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.args)
            .current_dir(&self.cwd);
        c
    }

    /// Runs to the end (or the deadline) and returns what happened.
    pub fn run(self) -> Run {
        let mut c = self.command();
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.describe()));
        if let Some(input) = self.stdin.clone() {
            let mut w = child.stdin.take().expect("piped stdin");
            std::thread::spawn(move || w.write_all(&input));
        }
        let out = drain(child.stdout.take().expect("piped stdout"));
        let err = drain(child.stderr.take().expect("piped stderr"));
        let status = match self.deadline {
            None => child.wait().expect("waiting for the command"),
            Some(limit) => match wait_until(&mut child, started + limit) {
                Some(s) => s,
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let run = self.finish(None, out, err, started.elapsed());
                    panic!(
                        "did not finish within {limit:?}: it must not hang{}",
                        run.report()
                    );
                }
            },
        };
        self.finish(Some(status), out, err, started.elapsed())
    }

    fn finish(
        &self,
        status: Option<ExitStatus>,
        out: std::thread::JoinHandle<Vec<u8>>,
        err: std::thread::JoinHandle<Vec<u8>>,
        took: Duration,
    ) -> Run {
        Run {
            cmd: self.describe(),
            cwd: self.cwd.clone(),
            tree: self.tree.clone(),
            code: status.and_then(|s| s.code()).unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned(),
            stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
            took,
        }
    }

    /// Starts it in the background, stdout discarded and stderr written to `log`.
    pub fn spawn_logged(self, log: &Path) -> Process {
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::create(log).expect("a log file")))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.describe()));
        Process {
            cmd: self.describe(),
            child,
            log: Some(log.to_path_buf()),
            lines: None,
            seen: Vec::new(),
        }
    }

    /// Starts it in the background, stdout discarded and stderr read line by line
    /// ([`Process::wait_for_line`]).
    pub fn spawn_lines(self) -> Process {
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.describe()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            cmd: self.describe(),
            child,
            log: None,
            lines: Some(rx),
            seen: Vec::new(),
        }
    }
}

fn drain(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Polls `child` until it exits or `deadline` passes (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(s) = child.try_wait().expect("polling the command") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A command running in the background; killed (and its output shown, if the test is
/// failing) on drop.
pub struct Process {
    pub cmd: String,
    pub child: Child,
    log: Option<PathBuf>,
    lines: Option<Receiver<String>>,
    seen: Vec<String>,
}

impl Process {
    /// Its stderr so far.
    pub fn stderr(&mut self) -> String {
        if let Some(log) = &self.log {
            return std::fs::read_to_string(log).unwrap_or_default();
        }
        self.drain_lines();
        self.seen.join("\n")
    }

    fn drain_lines(&mut self) {
        if let Some(rx) = &self.lines {
            while let Ok(l) = rx.try_recv() {
                self.seen.push(l);
            }
        }
    }

    /// Reads stderr until a line contains every one of `needles`; panics with what it
    /// printed if the process ends first or `limit` passes.
    pub fn wait_for_line(&mut self, needles: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let rx = self.lines.as_ref().expect("spawned with spawn_lines");
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if needles.iter().all(|n| line.contains(n)) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} printed no line with {needles:?} within {limit:?}:\n{}",
                    self.cmd,
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    panic!(
                        "{} ended without printing {needles:?}:\n{}",
                        self.cmd,
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Waits for the process to exit by itself; panics if it still runs after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        match wait_until(&mut self.child, Instant::now() + limit) {
            Some(s) => s,
            None => {
                let err = self.stderr();
                panic!(
                    "{} kept running {limit:?} after it should have stopped:\n{err}",
                    self.cmd
                )
            }
        }
    }

    /// Sends SIGTERM (with `kill`, as an operator or the kubelet would) and returns at
    /// once; [`Process::wait_exit`] for the exit.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let err = self.stderr();
            eprintln!("=== stderr of {}\n{err}", self.cmd);
        }
    }
}

/// What one finished command did.
pub struct Run {
    pub cmd: String,
    pub cwd: PathBuf,
    pub tree: Option<PathBuf>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    /// Everything needed to understand a failure.
    pub fn report(&self) -> String {
        let mut s = format!(
            "\n### command (in {}, {:?}):\n{}\n### exit: {}\n### stdout:\n{}\n### stderr:\n{}",
            self.cwd.display(),
            self.took,
            self.cmd,
            self.code,
            self.stdout,
            self.stderr
        );
        if let Some(t) = &self.tree {
            s.push_str(&format!(
                "### fixture tree {}:\n{}",
                t.display(),
                listing(t)
            ));
        }
        s
    }

    #[track_caller]
    /// Asserts the run ended with one of `codes` (`drover import` exits 2 when
    /// something was not carried).
    pub fn expect_any(&self, codes: &[i32]) -> &Run {
        assert!(
            codes.contains(&self.code),
            "expected an exit in {codes:?}{}",
            self.report()
        );
        self
    }

    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code{}", self.report());
        self
    }

    #[track_caller]
    pub fn expect_stdout_empty(&self) -> &Run {
        assert!(
            self.stdout.is_empty(),
            "stdout should be empty{}",
            self.report()
        );
        self
    }

    #[track_caller]
    pub fn expect_stdout_contains(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout should contain {needle:?}{}",
            self.report()
        );
        self
    }

    #[track_caller]
    pub fn expect_stderr_contains(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr should contain {needle:?}{}",
            self.report()
        );
        self
    }
}
