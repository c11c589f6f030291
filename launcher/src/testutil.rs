//! Test doubles shared by the unit tests: a recording runner and a fake context.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::context::Context;
use crate::process::{Cmd, Mode, Output, Runner};

/// Records every command line and answers with exit 0 and no output — except a `ps` of one
/// workspace's project, which it answers with that workspace's agent running and healthy (so
/// `up` finds what it waits for).
#[derive(Debug, Default, Clone)]
pub struct Recorder(pub Rc<RefCell<Vec<String>>>);

impl Runner for Recorder {
    fn run(&self, cmd: &Cmd, _: Mode) -> std::io::Result<Output> {
        self.0.borrow_mut().push(cmd.display());
        let project = cmd
            .args
            .iter()
            .find_map(|a| a.strip_prefix("label=com.docker.compose.project=jailoc-"));
        let stdout = match (cmd.args.first().map(String::as_str), project) {
            (Some("ps"), Some(w)) => format!(
                "{{\"ID\":\"c-{w}\",\"Labels\":\"com.docker.compose.project=jailoc-{w},com.docker.compose.service=opencode,dev.jailoc.workspace={w}\",\"Names\":\"jailoc-{w}-opencode-1\",\"State\":\"running\",\"Status\":\"Up 1 second (healthy)\"}}\n"
            ),
            _ => String::new(),
        };
        Ok(Output {
            stdout,
            ..Output::default()
        })
    }
}

/// Records every command line and answers it with the stdout of the first `(prefix, stdout)`
/// whose prefix the command line starts with; exit 0 and no output when none does.
#[derive(Debug, Default, Clone)]
pub struct Scripted {
    pub log: Rc<RefCell<Vec<String>>>,
    pub answers: Vec<(String, String)>,
}

impl Runner for Scripted {
    fn run(&self, cmd: &Cmd, _: Mode) -> std::io::Result<Output> {
        let line = cmd.display();
        self.log.borrow_mut().push(line.clone());
        let stdout = self
            .answers
            .iter()
            .find(|(prefix, _)| line.starts_with(prefix.as_str()))
            .map(|(_, out)| out.clone())
            .unwrap_or_default();
        Ok(Output {
            stdout,
            ..Output::default()
        })
    }
}

/// A writer whose bytes the test can read afterwards.
#[derive(Debug, Default, Clone)]
pub struct Buf(pub Rc<RefCell<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow()).into_owned()
    }
}

/// The host addresses unit tests see: one of each family, and loopback.
pub fn fixed_host_addrs() -> std::io::Result<Vec<crate::hostaddrs::HostAddr>> {
    Ok(vec![
        ("203.0.113.7".parse().expect("v4"), 24),
        ("2001:db8::7".parse().expect("v6"), 128),
        ("127.0.0.1".parse().expect("lo"), 8),
    ])
}

/// A temp dir where workspace paths are allowed (not in the container's /tmp): beside the test
/// binary in the target dir, else under /srv when the target dir lies where jailoc refuses
/// workspace paths (a checkout under /tmp), so the tests pass wherever the checkout lives.
pub fn tempdir() -> tempfile::TempDir {
    let exe = std::env::current_exe().expect("the test executable");
    let beside = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("unit-tmp"));
    let candidates = beside
        .into_iter()
        .chain([PathBuf::from("/srv/jailoc-unit-tmp")]);
    let mut refused = Vec::new();
    for base in candidates {
        use crate::config::paths::{CONTAINER_DIRS, HOST_SYSTEM_DENY};
        if let Some(dir) = CONTAINER_DIRS
            .iter()
            .chain(HOST_SYSTEM_DENY)
            .find(|d| base.starts_with(d))
        {
            refused.push(format!("{} is inside {dir}", base.display()));
            continue;
        }
        match std::fs::create_dir_all(&base) {
            Ok(()) => return tempfile::tempdir_in(base).expect("tempdir"),
            Err(e) => refused.push(format!("{}: {e}", base.display())),
        }
    }
    panic!(
        "no directory for test workspaces ({}): set CARGO_TARGET_DIR outside /tmp",
        refused.join("; ")
    );
}

/// A [`tempdir`] holding workspace `app` (`~/src/app`) in `~/.config/jailoc/config.toml`, HOME
/// being `ROOT/home`: the dir and ROOT (canonical).
pub fn app_home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    std::fs::create_dir_all(root.join("home/src/app")).expect("mkdir");
    let cfg = root.join("home/.config/jailoc/config.toml");
    std::fs::create_dir_all(cfg.parent().expect("parent")).expect("mkdir");
    std::fs::write(&cfg, "[workspaces.app]\npaths = [\"~/src/app\"]\n").expect("config");
    (dir, root)
}

/// A context with HOME at `root/home`, a stand-in sandbox-init, the given runner, and stdout /
/// stderr captured in the returned buffers.
pub fn context(root: &Path, runner: Recorder) -> (Context, Buf, Buf) {
    let mut env = BTreeMap::new();
    env.insert(
        "HOME".to_string(),
        root.join("home").to_string_lossy().into_owned(),
    );
    let si = root.join("sandbox-init");
    std::fs::write(&si, "x").expect("write");
    env.insert(
        "JAILOC_SANDBOX_INIT".into(),
        si.to_string_lossy().into_owned(),
    );
    let (out, err) = (Buf::default(), Buf::default());
    let ctx = Context {
        env,
        cwd: root.to_path_buf(),
        exe_dir: None,
        runner: Box::new(runner),
        out: Box::new(out.clone()),
        err: Box::new(err.clone()),
        input: Box::new(std::io::empty()),
        interactive: false,
        hidden_env: Vec::new(),
        writable: Vec::new(),
        host_addrs: fixed_host_addrs,
        proc_dir: root.join("proc"),
    };
    (ctx, out, err)
}

/// Workspace `name` of the config `text`, loaded as if from `root/config.toml` with HOME at
/// `root/home`.
pub fn workspace_of(root: &Path, text: &str, name: &str) -> crate::config::Workspace {
    let cfg = crate::config::parse_str(text, &root.join("config.toml"), &root.join("home"))
        .expect("config");
    crate::config::resolve_workspace(&cfg, name).expect("workspace")
}
