//! The Go jailoc's own config examples (101 files from its docs, tests and template, in
//! `tests/fixtures/go-jailoc-configs/`, with what the Go tool does with each in `EXPECTED.tsv`):
//! every file gets Go's outcome here. A file Go loads loads, and its workspaces get Go's ports
//! (in the resolved config and in `jailoc status`); a file Go rejects is refused with a message
//! naming the file, line and key. The only exceptions are the deliberate, documented security
//! refusals in [`DELIBERATE`]: `up` refuses those inputs (naming file, line and key), while
//! `status` still shows the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

use jailoc::config::{self, inspect_workspace, resolve_workspace, HostDirs};

const BIN: &str = env!("CARGO_BIN_EXE_jailoc");

/// Files Go loads that `jailoc up` refuses on purpose (docs/launcher.md, "Differences from the
/// Go jailoc"), with the key named and a piece of the reason.
const DELIBERATE: &[(&str, &str, &str)] = &[
    // The docs put `overlay.Dockerfile` inside the project, which the agent writes: it would
    // shape the next image (its iptables-restore, its /etc).
    (
        "doc_docs_how-to_custom-images_03_L59.toml",
        "workspaces.myproject.dockerfile",
        "is inside",
    ),
    (
        "doc_docs_how-to_custom-images_06_L98.toml",
        "workspaces.myproject.dockerfile",
        "is inside",
    ),
    (
        "doc_docs_how-to_custom-images_08_L131.toml",
        "workspaces.myproject.dockerfile",
        "is inside",
    ),
    // Mounting the host OpenCode's data directory (or a file in it): its snapshot repositories'
    // git config runs on the host, and jailoc copies auth.json into the workspace's own one.
    // A workspace nested in another's path: that agent could replace the inner directory with
    // a symlink (to ~/.ssh, the engine's socket) before the inner workspace's next `up`.
    (
        "doc_docs_how-to_workspace-configuration_01_L27.toml",
        "workspaces.specific.paths",
        "that container's agent could replace it with a symlink",
    ),
    (
        "doc_docs_how-to_workspace-configuration_13_L202.toml",
        "workspaces.my-project.mounts",
        "would expose your host OpenCode's data directory",
    ),
    (
        "doc_docs_how-to_workspace-configuration_15_L222.toml",
        "defaults.mounts",
        "would expose your host OpenCode's data directory",
    ),
    (
        "doc_docs_how-to_workspace-configuration_16_L235.toml",
        "defaults.mounts",
        "would expose your host OpenCode's data directory",
    ),
    (
        "doc_docs_reference_configuration_04_L73.toml",
        "defaults.mounts",
        "would expose your host OpenCode's data directory",
    ),
    (
        "doc_docs_reference_configuration_05_L121.toml",
        "workspaces.my-project.mounts",
        "would expose your host OpenCode's data directory",
    ),
];

/// Absolute example paths that are moved under the test's root (the README's rule); `/etc`
/// stays where it is (a secret source Go's test names there).
const MOVED: &[&str] = &[
    "/data",
    "/path/",
    "/opt/",
    "/work",
    "/z/",
    "/a/",
    "/abs/",
    "/nonexistent/",
    "/tmp/context",
];

struct Expected {
    file: String,
    outcome: String,
    ports: Vec<(String, u16)>,
    overlay: bool,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/go-jailoc-configs")
}

fn expected() -> Vec<Expected> {
    let text = std::fs::read_to_string(corpus().join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let ports = match f.get(2).copied().unwrap_or("-") {
                "-" | "" => Vec::new(),
                p => p
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("name=port");
                        (k.to_string(), v.parse().expect("port"))
                    })
                    .collect(),
            };
            Expected {
                file: f[0].to_string(),
                outcome: f[1].to_string(),
                ports,
                overlay: f.get(3) == Some(&"yes"),
            }
        })
        .collect()
}

/// The file's text with its example paths moved under `root` (`/home/you` → the test's home).
fn relocate(text: &str, root: &Path, home: &Path) -> String {
    // Through placeholders, so a replaced path is never matched again.
    let mut t = text.replace("\"/home/you", "\"\u{1}HOME");
    t = t.replace("\"/GOCOMPAT", "\"\u{1}ROOT/gocompat");
    for m in MOVED {
        t = t.replace(&format!("\"{m}"), &format!("\"\u{1}ROOT/abs{m}"));
    }
    t.replace("\u{1}HOME", &home.to_string_lossy())
        .replace("\u{1}ROOT", &root.to_string_lossy())
}

/// Creates what the config names (the README: "loads" assumes they exist): workspace paths
/// and build contexts as directories, Dockerfiles (a Go-style overlay), env files and secret
/// sources as files, mount sources as directories (or files when they have an extension).
fn create_inputs(text: &str, root: &Path, home: &Path) {
    let mut key = String::new();
    for line in text.lines() {
        let code = line.split(" #").next().unwrap_or(line);
        if let Some((k, _)) = code.split_once('=') {
            if !k.trim_start().starts_with('"') {
                key = k.trim().to_string();
            }
        }
        for (i, piece) in code.split('"').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            let raw = if key == "mounts" {
                piece.split(':').next().unwrap_or("")
            } else {
                piece
            };
            let path = if let Some(rest) = raw.strip_prefix("~/") {
                home.join(rest)
            } else if raw.starts_with(root.to_string_lossy().as_ref()) {
                PathBuf::from(raw)
            } else {
                continue;
            };
            let ext = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .and_then(|n| {
                    n.rsplit_once('.')
                        .map(|(b, e)| (b.to_string(), e.to_string()))
                })
                .is_some_and(|(b, e)| {
                    !b.is_empty() && ["json", "pem", "txt", "env"].contains(&e.as_str())
                });
            let file = match key.as_str() {
                "paths" | "build_context" => None,
                "dockerfile" => Some("ARG BASE\nFROM ${BASE}\nRUN echo go-overlay > /go-overlay\n"),
                "env_file" => Some("FROM_ENV_FILE=1\n"),
                "from_file" => Some("secret\n"),
                "mounts" if ext => Some("{}\n"),
                "mounts" => None,
                _ => continue,
            };
            match file {
                None => std::fs::create_dir_all(&path).expect("mkdir"),
                Some(body) => {
                    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                    if !path.exists() {
                        std::fs::write(&path, body).expect("write");
                    }
                }
            }
        }
    }
}

const FAKE_DOCKER: &str = "#!/bin/sh\nexit 0\n";

#[test]
fn every_go_config_gets_gos_outcome_and_ports() {
    let rows = expected();
    assert_eq!(rows.len(), 101, "the whole corpus");
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let base = std::fs::canonicalize(tmp.path()).expect("canonical");
    let mut deliberate_seen = Vec::new();
    let mut unexpected: Vec<String> = Vec::new();
    for row in &rows {
        let root = base.join(row.file.trim_end_matches(".toml"));
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("mkdir");
        let original = std::fs::read_to_string(corpus().join(&row.file)).expect("corpus file");
        let text = relocate(&original, &root, &home);
        let file = home.join(".config/jailoc/config.toml");
        std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
        std::fs::write(&file, &text).expect("write");
        let dirs = HostDirs::from_home(&home);
        let names_named: Vec<String> = row.ports.iter().map(|(n, _)| n.clone()).collect();
        let what = format!("{}:\n{text}", row.file);
        match row.outcome.as_str() {
            "rejected: invalid TOML" => {
                let e = config::load_file(&file, &dirs).expect_err(&what);
                assert_eq!(e.file, file, "{what}");
                assert!(e.line > 0, "{what}: {e}");
                assert!(e.message.starts_with("invalid TOML: "), "{what}: {e}");
            }
            "rejected by Go" => {
                // Nothing the config names is created: Go rejects these for their content (a
                // reserved or invalid secret name) or, the uncommented template, for an
                // env_file that does not exist.
                let e = match config::load_file(&file, &dirs) {
                    Err(e) => e,
                    Ok(cfg) => {
                        let name = names_named.first().cloned().unwrap_or("default".into());
                        resolve_workspace(&cfg, &name).expect_err(&what)
                    }
                };
                assert_eq!(e.file, file, "{what}");
                assert!(e.line > 0 && !e.key.is_empty(), "{what}: {e}");
            }
            "loads" => {
                create_inputs(&text, &root, &home);
                let cfg = config::load_file(&file, &dirs)
                    .unwrap_or_else(|e| panic!("{what}\nrefused: {e}"));
                let mut names: Vec<String> = cfg.workspaces.keys().cloned().collect();
                if names.is_empty() {
                    names.push("default".into());
                }
                let configured: Vec<String> = cfg.workspaces.keys().cloned().collect();
                assert_eq!(configured, names_named, "{what}");
                let deliberate = DELIBERATE.iter().find(|(f, _, _)| *f == row.file);
                for name in &names {
                    let ws = inspect_workspace(&cfg, name)
                        .unwrap_or_else(|e| panic!("{what}\nstatus/down/config refused: {e}"));
                    if let Some((_, port)) = row.ports.iter().find(|(n, _)| n == name) {
                        assert_eq!(ws.port, *port, "{what}: port of {name}");
                    }
                    assert_eq!(
                        ws.image.overlay.is_some(),
                        row.overlay,
                        "{what}: overlay of {name}"
                    );
                    match (resolve_workspace(&cfg, name), deliberate) {
                        (Ok(_), _) => {}
                        (Err(e), Some((f, key, why))) => {
                            assert_eq!(e.file, file, "{what}");
                            assert!(e.line > 0, "{what}: {e}");
                            assert_eq!(&e.key, key, "{what}: {e}");
                            assert!(e.message.contains(why), "{what}: {e}");
                            deliberate_seen.push(*f);
                        }
                        (Err(e), None) => unexpected.push(format!("{}: up refused: {e}", row.file)),
                    }
                }
                // `status` works for all of them (deliberate refusals included) and shows
                // each published workspace's Go port.
                let bin = root.join("bin");
                std::fs::create_dir_all(&bin).expect("mkdir");
                let docker = bin.join("docker");
                std::fs::write(&docker, FAKE_DOCKER).expect("write");
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod");
                let out = Command::new(BIN)
                    .args(["status", "--json"])
                    .env_clear()
                    .env("HOME", &home)
                    .env("PATH", &bin)
                    .current_dir(&root)
                    .output()
                    .expect("run jailoc");
                assert!(
                    out.status.success(),
                    "{what}\nstatus: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let v: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("status json");
                for (name, port) in &row.ports {
                    let r = v
                        .as_array()
                        .expect("rows")
                        .iter()
                        .find(|r| r["name"] == name.as_str())
                        .unwrap_or_else(|| panic!("{what}: {name} not in status"));
                    assert!(
                        r["port"] == *port || r["port"].is_null(),
                        "{what}: status port of {name}: {r}"
                    );
                }
            }
            other => panic!("unknown outcome {other:?}"),
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
    deliberate_seen.sort();
    deliberate_seen.dedup();
    let listed: Vec<&str> = DELIBERATE.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(deliberate_seen, listed, "every deliberate refusal was seen");
}
