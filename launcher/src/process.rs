//! The one seam through which the launcher runs other programs, so every command can be tested
//! with a recording fake instead of a real engine.

use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A command to run: program, arguments and extra environment. Never put a secret in `args`:
/// arguments are visible to every user of the machine (`ps`), the environment is not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Variables of jailoc's own environment the child must not inherit.
    pub env_remove: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// The file to execute, set by [`crate::context::Context::run`] once it has found and
    /// checked the program: run by this path (with `program` as `argv[0]`), so what runs is
    /// what was checked, not whatever a second `PATH` lookup finds a moment later.
    pub exe: Option<PathBuf>,
}

impl Cmd {
    /// A command from a program and its arguments.
    pub fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            env_remove: Vec::new(),
            cwd: None,
            exe: None,
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line as a user would type it (for messages only).
    pub fn display(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                s.push('\'');
                s.push_str(&a.replace('\'', "'\\''"));
                s.push('\'');
            } else {
                s.push_str(a);
            }
        }
        s
    }
}

/// How a command's output is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Capture stdout and stderr (queries).
    Capture,
    /// Inherit the terminal (builds, `up`, `logs`, `shell`): the user sees progress live.
    Inherit,
}

/// What a finished command produced. `stdout`/`stderr` are empty in [`Mode::Inherit`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit code; 128+N when killed by signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// True if the command exited with 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// How a watched command ([`Runner::run_watched`]) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// It exited by itself.
    Exited(Output),
    /// The watch asked to stop it, for this reason, and it was terminated.
    Stopped(String),
}

/// Runs commands. Production uses [`SystemRunner`]; tests pass a fake.
pub trait Runner {
    /// Runs `cmd` to completion. `Err` means it could not be started (e.g. not installed).
    fn run(&self, cmd: &Cmd, mode: Mode) -> io::Result<Output>;

    /// Runs `cmd` on the terminal ([`Mode::Inherit`]) and, while it runs, calls `watch` every
    /// `every`; when `watch` returns a reason, `cmd` is terminated (SIGTERM, then SIGKILL after
    /// a grace period) and the reason returned. The default runs `cmd` unwatched (for doubles
    /// that do not model time).
    fn run_watched(
        &self,
        cmd: &Cmd,
        every: Duration,
        watch: &mut dyn FnMut() -> Option<String>,
    ) -> io::Result<Watched> {
        let _ = (every, watch);
        self.run(cmd, Mode::Inherit).map(Watched::Exited)
    }

    /// [`run_watched`](Self::run_watched) with stdin closed and stdout read by jailoc: each
    /// line (without its newline) goes to `line` as it arrives, so the caller can both show
    /// and judge it; stderr stays the terminal's. The default runs `cmd` captured and hands
    /// its stdout over afterwards (for doubles).
    fn run_streamed(
        &self,
        cmd: &Cmd,
        every: Duration,
        line: &mut dyn FnMut(&str),
        watch: &mut dyn FnMut() -> Option<String>,
    ) -> io::Result<Watched> {
        let _ = (every, watch);
        let out = self.run(cmd, Mode::Capture)?;
        out.stdout.lines().for_each(&mut *line);
        Ok(Watched::Exited(out))
    }
}

/// Runs commands as real child processes.
#[derive(Debug, Default)]
pub struct SystemRunner;

/// How often a watched child is checked for having exited.
const CHILD_POLL: Duration = Duration::from_millis(50);
/// How long a watched child gets to end after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// The `std` command for `cmd`.
fn command(cmd: &Cmd) -> Command {
    let mut c = match &cmd.exe {
        Some(exe) => {
            use std::os::unix::process::CommandExt;
            let mut c = Command::new(exe);
            c.arg0(&cmd.program);
            c
        }
        None => Command::new(&cmd.program),
    };
    c.args(&cmd.args);
    for k in &cmd.env_remove {
        c.env_remove(k);
    }
    for (k, v) in &cmd.env {
        c.env(k, v);
    }
    if let Some(dir) = &cmd.cwd {
        c.current_dir(dir);
    }
    c
}

/// SIGTERM, then SIGKILL if `child` has not ended within [`TERM_GRACE`].
fn terminate(child: &mut std::process::Child) -> io::Result<()> {
    if let Some(pid) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let start = Instant::now();
    while start.elapsed() < TERM_GRACE {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(CHILD_POLL);
    }
    let _ = child.kill();
    child.wait().map(|_| ())
}

/// Waits for `child`, calling `tick` every [`CHILD_POLL`] and asking `watch` every `every`
/// whether to stop it: `Ok(Ok(code))` when it exited, `Ok(Err(reason))` when `watch` stopped it
/// (terminated, see [`terminate`]).
fn watch_child(
    child: &mut std::process::Child,
    every: Duration,
    watch: &mut dyn FnMut() -> Option<String>,
    tick: &mut dyn FnMut(),
) -> io::Result<std::result::Result<i32, String>> {
    let mut last = Instant::now();
    loop {
        tick();
        if let Some(status) = child.try_wait()? {
            return Ok(Ok(code_of(status)));
        }
        std::thread::sleep(CHILD_POLL);
        if last.elapsed() < every {
            continue;
        }
        if let Some(reason) = watch() {
            terminate(child)?;
            return Ok(Err(reason));
        }
        last = Instant::now();
    }
}

impl Runner for SystemRunner {
    fn run_watched(
        &self,
        cmd: &Cmd,
        every: Duration,
        watch: &mut dyn FnMut() -> Option<String>,
    ) -> io::Result<Watched> {
        let mut child = command(cmd).spawn()?;
        Ok(match watch_child(&mut child, every, watch, &mut || {})? {
            Ok(code) => Watched::Exited(Output {
                code,
                ..Output::default()
            }),
            Err(reason) => Watched::Stopped(reason),
        })
    }

    fn run_streamed(
        &self,
        cmd: &Cmd,
        every: Duration,
        line: &mut dyn FnMut(&str),
        watch: &mut dyn FnMut() -> Option<String>,
    ) -> io::Result<Watched> {
        let mut child = command(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let lines = child.stdout.take().map(read_lines);
        let mut drain = || {
            if let Some(rx) = &lines {
                while let Ok(l) = rx.try_recv() {
                    line(&l);
                }
            }
        };
        let exited = match watch_child(&mut child, every, watch, &mut drain)? {
            Ok(code) => code,
            Err(reason) => return Ok(Watched::Stopped(reason)),
        };
        // What it wrote just before it exited; the pipe ends with it (bounded, in case a
        // process it left behind still holds the pipe open).
        if let Some(rx) = lines {
            let deadline = Instant::now() + TERM_GRACE;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(l) => line(&l),
                    Err(_) => break,
                }
            }
        }
        Ok(Watched::Exited(Output {
            code: exited,
            ..Output::default()
        }))
    }

    fn run(&self, cmd: &Cmd, mode: Mode) -> io::Result<Output> {
        let mut c = command(cmd);
        match mode {
            Mode::Capture => {
                c.stdin(Stdio::null());
                let out = c.output()?;
                Ok(Output {
                    code: code_of(out.status),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                })
            }
            Mode::Inherit => {
                let status = c.status()?;
                Ok(Output {
                    code: code_of(status),
                    ..Output::default()
                })
            }
        }
    }
}

/// The longest line [`read_lines`] hands over, in bytes: the container's stdout is the agent's
/// to write, and a line without end must not be held whole in the launcher's memory.
const MAX_LINE: usize = 1 << 20;
/// Ends a line cut at [`MAX_LINE`] (counted within it), so a reader sees it is not whole.
const TRUNCATED: &str = " [line truncated by jailoc]";
/// Lines read but not yet taken: the reader waits rather than queueing without bound.
const LINES_QUEUED: usize = 16;

/// Reads `pipe` line by line on a thread of its own (lossy UTF-8, newline dropped, each line
/// at most [`MAX_LINE`] bytes); the channel closes at the pipe's end.
fn read_lines(pipe: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(LINES_QUEUED);
    std::thread::spawn(move || {
        let mut reader = io::BufReader::new(pipe);
        let mut buf = Vec::new();
        while let Ok(Some(truncated)) = read_line_capped(&mut reader, &mut buf, MAX_LINE) {
            if tx.send(line_text(&buf, truncated)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Reads one line into `buf` (cleared first, newline dropped), keeping its first `cap` bytes
/// and reading past the rest: `Some(true)` when some were dropped, `None` at the end.
fn read_line_capped(
    reader: &mut impl io::BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<bool>> {
    buf.clear();
    let mut truncated = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((!buf.is_empty() || truncated).then_some(truncated));
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let part = &available[..newline.unwrap_or(available.len())];
        let room = cap - buf.len();
        buf.extend_from_slice(&part[..part.len().min(room)]);
        truncated |= part.len() > room;
        let used = newline.map_or(part.len(), |n| n + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(Some(truncated));
        }
    }
}

/// A line's text: lossy UTF-8 (which can grow it), cut to [`MAX_LINE`] bytes with
/// [`TRUNCATED`] at its end when it was cut here or while reading.
fn line_text(bytes: &[u8], truncated: bool) -> String {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if truncated || text.len() > MAX_LINE {
        let mut end = text.len().min(MAX_LINE - TRUNCATED.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(TRUNCATED);
    }
    text
}

fn code_of(status: std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watch sees a running child and, when it says so, the child is ended (a `sleep` that
    /// would outlive the test by far); until then the child runs, and a child that exits by
    /// itself is reported with its code.
    #[test]
    fn a_watched_child_is_stopped_when_the_watch_says_so() {
        let mut calls = 0;
        let r = SystemRunner
            .run_watched(
                &Cmd::new("sleep", ["600"]),
                Duration::from_millis(10),
                &mut || {
                    calls += 1;
                    (calls == 3).then(|| "the container stopped".to_string())
                },
            )
            .expect("run");
        assert_eq!(r, Watched::Stopped("the container stopped".into()));
        assert_eq!(calls, 3);
        let r = SystemRunner
            .run_watched(
                &Cmd::new("sh", ["-c", "exit 7"]),
                Duration::ZERO,
                &mut || None,
            )
            .expect("run");
        assert_eq!(
            r,
            Watched::Exited(Output {
                code: 7,
                ..Output::default()
            })
        );
    }

    /// A long line keeps its head and is marked; the line after it comes whole; the last line
    /// without a newline still comes; invalid UTF-8 that grows in the conversion stays capped.
    #[test]
    fn a_capped_line_keeps_its_head_and_the_next_line_comes_whole() {
        let input = b"abcdefgh\nxy\nlast".to_vec();
        let mut reader = io::BufReader::with_capacity(3, &input[..]);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while let Some(t) = read_line_capped(&mut reader, &mut buf, 4).expect("read") {
            lines.push((String::from_utf8_lossy(&buf).into_owned(), t));
        }
        assert_eq!(
            lines,
            [
                ("abcd".into(), true),
                ("xy".into(), false),
                ("last".into(), false)
            ]
        );
        let text = line_text(&[0xff; MAX_LINE], false);
        assert!(text.len() <= MAX_LINE && text.ends_with(TRUNCATED));
        assert_eq!(line_text(b"ok", false), "ok");
    }

    /// The attack: the container's stdout is the agent's to write. A "line" of 64 MiB without a
    /// newline must not be held whole in jailoc's memory on the host (a few GiB would end the
    /// launcher, or something else the host's OOM killer picks).
    #[test]
    fn attack_a_streamed_line_without_end_is_not_held_whole() {
        let mut longest = 0usize;
        SystemRunner
            .run_streamed(
                &Cmd::new("sh", ["-c", "head -c 67108864 /dev/zero | tr '\\0' a"]),
                Duration::from_secs(60),
                &mut |l| longest = longest.max(l.len()),
                &mut || None,
            )
            .expect("run");
        assert!(longest > 0, "the line was not handed over at all");
        assert!(
            longest <= 1 << 20,
            "a line of {longest} bytes was read whole into memory"
        );
    }

    /// Every line reaches the caller as it comes, also the last one without a newline and
    /// those written just before the exit; a hung child is stopped by the watch.
    #[test]
    fn a_streamed_child_hands_over_each_line_and_its_code() {
        let mut seen = Vec::new();
        let r = SystemRunner
            .run_streamed(
                &Cmd::new(
                    "sh",
                    ["-c", "echo one; sleep 0.2; printf 'two\\nthree'; exit 3"],
                ),
                Duration::from_secs(60),
                &mut |l| seen.push(l.to_string()),
                &mut || None,
            )
            .expect("run");
        assert_eq!(seen, ["one", "two", "three"]);
        assert_eq!(
            r,
            Watched::Exited(Output {
                code: 3,
                ..Output::default()
            })
        );
        let r = SystemRunner
            .run_streamed(
                &Cmd::new("sleep", ["600"]),
                Duration::from_millis(10),
                &mut |_| {},
                &mut || Some("timed out".to_string()),
            )
            .expect("run");
        assert_eq!(r, Watched::Stopped("timed out".into()));
    }
}
