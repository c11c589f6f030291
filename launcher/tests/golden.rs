//! Golden files: for every case in `tests/fixtures/launcher/<case>/`, the rendered
//! `docker-compose.yml`, `policy.toml` and `secret-env` must match `expected/` byte for byte.
//! Regenerate with `JAILOC_BLESS=1 cargo test -p jailoc --test golden` and review the diff.
//!
//! Host-specific parts are normalised: the temp root becomes `/ROOT`, and content-hash image
//! tags become `HASH` (their stability is a unit test in `image.rs`).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use jailoc::config::{self, resolve_workspace};
use jailoc::context::Context;
use jailoc::process::{Cmd, Mode, Output, Runner};
use jailoc::{image, policy, workspace};

struct NoProcesses;

impl Runner for NoProcesses {
    fn run(&self, cmd: &Cmd, _: Mode) -> io::Result<Output> {
        Err(io::Error::other(format!(
            "golden tests run no processes (tried {})",
            cmd.display()
        )))
    }
}

/// The host addresses every golden policy walls off (fixed, documentation ranges).
fn host_blocked() -> Vec<jailoc_policy::IpNet> {
    jailoc::hostaddrs::blocked_networks(
        [
            "203.0.113.7",
            "127.0.0.1",
            "2001:db8::7",
            "::1",
            "198.51.100.9",
        ]
        .iter()
        .map(|a| {
            let addr: std::net::IpAddr = a.parse().expect("addr");
            (addr, if addr.is_ipv4() { 32 } else { 128 })
        }),
    )
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/launcher")
}

fn context(root: &Path) -> Context {
    let mut env = BTreeMap::new();
    env.insert(
        "HOME".into(),
        root.join("home").to_string_lossy().into_owned(),
    );
    env.insert(
        "SSH_AUTH_SOCK".into(),
        root.join("ssh-agent.sock").to_string_lossy().into_owned(),
    );
    Context {
        env,
        cwd: root.to_path_buf(),
        exe_dir: None,
        runner: Box::new(NoProcesses),
        out: Box::new(io::sink()),
        err: Box::new(io::sink()),
        input: Box::new(io::empty()),
        interactive: false,
        hidden_env: Vec::new(),
        writable: Vec::new(),
        host_addrs: || Ok(Vec::new()),
        proc_dir: root.join("proc"),
    }
}

/// `jailoc-x:0123456789abcdef"` → `jailoc-x:HASH"`.
fn normalise_hashes(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(':') {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let after = &tail[1..];
        let token_start = head.rfind(['"', ' ']).map_or(0, |p| p + 1);
        let is_tag = head[token_start..].starts_with("jailoc-")
            && after.len() > 16
            && after[..16].bytes().all(|b| b.is_ascii_hexdigit())
            && after.as_bytes()[16] == b'"';
        if is_tag {
            out.push_str(":HASH");
            rest = &after[16..];
        } else {
            out.push(':');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn copy_inputs(case: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(case).expect("read case") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    std::fs::create_dir_all(to).expect("mkdir");
    for e in entries {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

fn render_case(case: &Path) -> Vec<(String, String)> {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let root = std::fs::canonicalize(tmp.path()).expect("canonical");
    let home = root.join("home");
    // What a typical host has: OpenCode's config, data (never mounted: each workspace has its
    // own) and install dir, Claude transcripts (not mounted either),
    // shared agent skills, a ~/.gitconfig.
    for d in [
        ".config/opencode",
        ".local/share/opencode",
        ".opencode/bin",
        ".claude/transcripts",
        ".agents",
    ] {
        std::fs::create_dir_all(home.join(d)).expect("mkdir");
    }
    std::fs::write(home.join(".gitconfig"), "[user]\n\tname = A\n").expect("write");
    std::fs::write(root.join("ssh-agent.sock"), "").expect("stand-in socket");
    let sandbox_init = root.join("bin/sandbox-init");
    std::fs::create_dir_all(sandbox_init.parent().expect("parent")).expect("mkdir");
    std::fs::write(&sandbox_init, b"\x7fELF").expect("write");

    let cfg_dir = root.join("cfg");
    copy_inputs(case, &cfg_dir);
    // A case's `home/` tree (env files, Dockerfiles) goes into the fake home.
    copy_tree(&case.join("home"), &home);
    let ctx = context(&root);
    let cfg = config::load_file(
        &cfg_dir.join("config.toml"),
        &config::HostDirs::from_home(&home),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
    let name = match std::fs::read_to_string(case.join("workspace.txt")) {
        Ok(n) => n.trim().to_string(),
        Err(_) => {
            assert_eq!(
                cfg.workspaces.len(),
                1,
                "{}: name the workspace",
                case.display()
            );
            cfg.workspaces.keys().next().expect("one").clone()
        }
    };
    let ws = resolve_workspace(&cfg, &name).expect("resolve");
    let files = workspace::files(&ctx, &name);
    let img = image::plan(
        &name,
        &ws.image,
        &ctx.cache_dir().join("base"),
        &sandbox_init,
    )
    .expect("plan");
    let compose = workspace::render_compose(&ctx, &ws, &files, &img.image, &sandbox_init, None);
    let root_str = root.to_string_lossy().into_owned();
    [
        ("docker-compose.yml", compose),
        ("policy.toml", policy::render_policy(&ws, &host_blocked())),
        ("secret-env", policy::render_secret_env(&ws)),
    ]
    .into_iter()
    .map(|(f, text)| {
        (
            f.to_string(),
            normalise_hashes(&text.replace(&root_str, "/ROOT")),
        )
    })
    .collect()
}

#[test]
fn golden_compose_and_policy_files() {
    let bless = std::env::var_os("JAILOC_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("config.toml").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "expected at least 6 golden cases");
    let mut failures = Vec::new();
    for case in &cases {
        for (file, got) in render_case(case) {
            let path = case.join("expected").join(&file);
            if bless {
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(&path, &got).expect("bless");
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if want != got {
                failures.push(format!(
                    "{} differs (JAILOC_BLESS=1 to regenerate):\n--- want\n{want}\n--- got\n{got}",
                    path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hash_normalisation() {
    assert_eq!(
        normalise_hashes("image: \"jailoc-base:0123456789abcdef\"\nx: 1"),
        "image: \"jailoc-base:HASH\"\nx: 1"
    );
    assert_eq!(normalise_hashes("a:b \"corp/x:1\""), "a:b \"corp/x:1\"");
}

/// Every golden compose file is valid for docker-compose 1.29 (`config -q`), the oldest
/// implementation we support. Skips without docker-compose, except under CI (`jailoc_tests::in_ci`).
#[test]
fn golden_compose_files_pass_docker_compose_config() {
    let found = std::process::Command::new("docker-compose")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        jailoc_tests::skip(
            "the docker-compose check of the golden compose files",
            "docker-compose is not installed",
        );
        return;
    }
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let root = tmp.path();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .map(|e| e.expect("entry").path().join("expected/docker-compose.yml"))
        .filter(|p| p.is_file())
        .collect();
    cases.sort();
    for file in cases {
        let text = std::fs::read_to_string(&file)
            .expect("read")
            .replace("/ROOT", &root.to_string_lossy());
        // The env file must exist for `config` to read it.
        for line in text.lines() {
            if let Some(p) = line
                .trim()
                .strip_prefix("- \"")
                .and_then(|l| l.strip_suffix(".env\""))
            {
                let p = PathBuf::from(format!("{p}.env"));
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::fs::write(&p, "OPENCODE_SERVER_PASSWORD=x\n").expect("write");
            }
        }
        let out_file = root.join("docker-compose.yml");
        std::fs::write(&out_file, text).expect("write");
        let out = std::process::Command::new("docker-compose")
            .args(["-p", "jailoc-golden", "-f"])
            .arg(&out_file)
            .args(["config", "-q"])
            .output()
            .expect("run docker-compose");
        assert!(
            out.status.success(),
            "{} rejected by docker-compose: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
