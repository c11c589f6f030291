//! Every path from the agent to something root runs, reads or re-owns, replayed as an attack:
//! the agent (uid 1000) plants something where root used to look, and root must not run it,
//! follow it or change its owner. sandbox-init runs as PID 1 of a fresh pid and mount namespace
//! inside a throwaway network namespace with only `lo` (see `init_common`), so every mount a
//! test makes stays in that namespace and ends with it.
//!
//! Root only; skips with a reason otherwise, fails when `CI` is set.

mod init_common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{chown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use init_common::{describe, path_str, Sandbox};
use jailoc_tests::lab::{replace_sbin_script, run_watchdog};

/// The `PATH` of a typical image, with the agent's own directory put first by the test.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Every iptables name sandbox-init may look for, and the multi-call binaries behind them.
fn iptables_names() -> Vec<String> {
    let mut names = vec![
        "xtables-nft-multi".to_owned(),
        "xtables-legacy-multi".to_owned(),
    ];
    for family in ["iptables", "ip6tables"] {
        for variant in ["", "-nft", "-legacy"] {
            for tool in ["-save", "-restore"] {
                names.push(format!("{family}{variant}{tool}"));
            }
        }
    }
    names
}

/// A directory the agent owns, as it owns `~/.local/bin`.
fn agent_dir(sb: &Sandbox, name: &str) -> PathBuf {
    let dir = sb.tmp.subdir(name, 0o755);
    chown(&dir, Some(1000), Some(1000)).expect("chown");
    dir
}

/// An executable script owned by `uid`.
fn script(path: &Path, text: &str, uid: u32) {
    fs::write(path, text).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
    chown(path, Some(uid), Some(uid)).expect("chown");
}

/// Marker files whose name starts with `prefix`.
fn markers(sb: &Sandbox, prefix: &str) -> Vec<String> {
    fs::read_dir(&sb.markers)
        .expect("read markers")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The boot's rules are in place: in both families `OUTPUT` jumps to `JAILOC-OUTPUT` first,
/// and the chain holds its rules.
fn assert_rules_in_place(sb: &Sandbox) {
    for save in ["iptables-nft-save", "ip6tables-nft-save"] {
        let out = String::from_utf8_lossy(&sb.ns(&[save, "-t", "filter"]).stdout).into_owned();
        let first = out.lines().find(|l| l.starts_with("-A OUTPUT"));
        assert_eq!(first, Some("-A OUTPUT -j JAILOC-OUTPUT"), "{save}:\n{out}");
        assert!(
            out.contains("-A JAILOC-OUTPUT -o lo -j ACCEPT\n"),
            "{save}:\n{out}"
        );
    }
}

fn owner(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .uid()
}

#[test]
fn attack_planted_iptables_restore_in_agent_path_is_not_run() {
    let Some(mut sb) = Sandbox::new("planted iptables on PATH") else {
        return;
    };
    // What the agent leaves in ~/.local/bin, first on the image's PATH, for the next boot:
    // every iptables name, each leaving a marker and then doing the real job (so nothing
    // else would give it away).
    let bin = agent_dir(&sb, "agent-local-bin");
    for name in iptables_names() {
        script(
            &bin.join(&name),
            &format!(
                "#!/bin/sh\ntouch {}/planted-{name}\nexec /usr/sbin/{name} \"$@\"\n",
                sb.markers.display()
            ),
            1000,
        );
    }
    // The image's environment pointing iptables' extensions into the agent's directory, and
    // PID 1 starting in it (a container's working dir is the agent's project).
    sb.env = vec![
        ("PATH".into(), format!("{}:{SYSTEM_PATH}", bin.display())),
        ("XTABLES_LIBDIR".into(), path_str(&bin)),
    ];
    let mut cmd = sb.command("", &[&path_str(&sb.probe), "status"]);
    cmd.current_dir(&bin);
    let run = run_watchdog(cmd, Duration::from_secs(60));
    let planted = markers(&sb, "planted-");
    assert!(
        planted.is_empty(),
        "root ran the agent's planted programs: {planted:?}\n{}",
        describe(&run)
    );
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    assert_rules_in_place(&sb);
}

#[test]
fn attack_program_in_a_system_dir_not_owned_by_root_is_refused_with_71() {
    let Some(sb) = Sandbox::new("untrusted iptables in /usr/sbin") else {
        return;
    };
    // A careless image: root's /usr/sbin, but an iptables-nft-restore the agent's uid owns
    // (so the agent could rewrite it between boots).
    let sbin = sb.tmp.subdir("sbin", 0o755);
    let ran = sb.markers.join("untrusted-ran");
    for name in ["iptables-nft-restore", "iptables-nft-save"] {
        script(
            &sbin.join(name),
            &format!("#!/bin/sh\ntouch {}\n", ran.display()),
            1000,
        );
    }
    let agent_ran = sb.markers.join("agent-ran");
    let run = sb.run(
        &format!("mount --bind {} /usr/sbin", sbin.display()),
        &[&path_str(&sb.probe), "touch", &path_str(&agent_ran)],
    );
    assert!(
        !ran.exists(),
        "root ran a program the agent can rewrite: {}",
        describe(&run)
    );
    assert_eq!(run.code, Some(71), "{}", describe(&run));
    assert!(
        run.stderr.contains(
            "failed to trust /usr/sbin/iptables-nft-restore: it is owned by uid 1000, not by root"
        ),
        "{}",
        describe(&run)
    );
    assert!(!agent_ran.exists(), "the agent started without a firewall");
}

#[test]
fn iptables_runs_with_a_fixed_environment_in_root_dir_without_inherited_fds() {
    let Some(mut sb) = Sandbox::new("iptables environment") else {
        return;
    };
    // A recording stand-in for the IPv4 nft programs: it writes down what it was given, then
    // runs the real one.
    let log = sb.markers.join("iptables-calls");
    let spy = sb.tmp.write(
        "spy",
        &format!(
            "#!/bin/sh\n{{ echo \"call $0\"; echo \"cwd $(pwd)\"; \
             if [ -e /proc/$$/fd/7 ]; then echo 'fd7 open'; else echo 'fd7 closed'; fi; \
             env | sed 's/^/env /'; }} >> {log}\n\
             exec /media/sbin/\"$(basename \"$0\")\" \"$@\"\n",
            log = log.display()
        ),
    );
    let setup = format!(
        "exec 7</etc/hostname\n{}",
        replace_sbin_script(&[("iptables-nft-restore", &spy), ("iptables-nft-save", &spy)])
    );
    sb.env = vec![
        ("XTABLES_LIBDIR".into(), "/nonexistent-agent-dir".into()),
        ("FROM_THE_IMAGE".into(), "1".into()),
    ];
    let cwd = agent_dir(&sb, "project");
    let mut cmd = sb.command(&setup, &[&path_str(&sb.probe), "status"]);
    cmd.current_dir(&cwd);
    let run = run_watchdog(cmd, Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    let calls = fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = calls.lines().collect();
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    assert!(count("call ") >= 2, "the spy was not run:\n{calls}");
    let cwd_lines: BTreeSet<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("cwd "))
        .collect();
    assert_eq!(cwd_lines, BTreeSet::from(["cwd /"]), "{calls}");
    let fd_lines: BTreeSet<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("fd7 "))
        .collect();
    assert_eq!(fd_lines, BTreeSet::from(["fd7 closed"]), "{calls}");
    // dash adds PWD itself; nothing else may come from the container's environment.
    let env: BTreeSet<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("env "))
        .collect();
    assert_eq!(
        env,
        BTreeSet::from(["env PATH=/usr/sbin:/usr/bin:/sbin:/bin", "env PWD=/"]),
        "{calls}"
    );
    assert_rules_in_place(&sb);
}

#[test]
fn attack_home_fixup_does_not_cross_a_bind_mount_or_follow_symlinks() {
    let Some(sb) = Sandbox::new("home fix-up attacks") else {
        return;
    };
    // Root's files the agent wants to own: a host directory bind-mounted below .local (on the
    // same file system as the home), the directory .config was replaced with a symlink to, and
    // what symlinks inside .cache point at.
    let host = sb.tmp.subdir("host-dir", 0o755);
    fs::create_dir_all(host.join("sub")).expect("mkdir");
    fs::write(host.join("a"), "a").expect("write");
    fs::write(host.join("sub/b"), "b").expect("write");
    let etc_like = sb.tmp.subdir("etc-like", 0o755);
    fs::write(etc_like.join("passwd"), "root:x:0:0::/root:/bin/sh\n").expect("write");
    let root_file = sb.tmp.write("root-file", "root's\n");
    let home = &sb.home;
    fs::create_dir_all(home.join(".local/share/x")).expect("mkdir");
    fs::create_dir_all(home.join(".cache/deep")).expect("mkdir");
    symlink(&etc_like, home.join(".config")).expect("symlink");
    symlink(&root_file, home.join(".cache/link-to-file")).expect("symlink");
    symlink(&host, home.join(".cache/deep/link-to-dir")).expect("symlink");
    // .local and .cache belong to root (as Docker creates them): the fix-up walks both.
    let setup = format!(
        "mount --bind {} {}",
        host.display(),
        home.join(".local/share/x").display()
    );
    let run = sb.run(&setup, &[&path_str(&sb.probe), "status"]);
    for p in [
        host.clone(),
        host.join("a"),
        host.join("sub"),
        host.join("sub/b"),
        etc_like.clone(),
        etc_like.join("passwd"),
        root_file.clone(),
    ] {
        assert_eq!(
            owner(&p),
            0,
            "the home fix-up gave {} to the agent: {}",
            p.display(),
            describe(&run)
        );
    }
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    // And it still did its job on what is really the agent's.
    for p in [
        ".local",
        ".local/share",
        ".cache",
        ".cache/deep",
        ".cache/link-to-file",
        ".cache/deep/link-to-dir",
    ] {
        assert_eq!(owner(&home.join(p)), 1000, "{p}: {}", describe(&run));
    }
    assert!(run.stderr.contains("it is a symlink"), "{}", describe(&run));
}

#[test]
fn attack_planted_secret_symlink_is_not_read_as_root() {
    let Some(sb) = Sandbox::new("planted secret symlink") else {
        return;
    };
    sb.write_config("secret-env", "API_KEY\n");
    let root_only = sb.tmp.write("root-only", "root's own secret\n");
    fs::set_permissions(&root_only, fs::Permissions::from_mode(0o600)).expect("chmod");
    // The image has no /run/secrets and the launcher listed a secret it did not mount: the
    // agent made /run/secrets its own and planted API_KEY -> a file only root can read.
    let setup = format!(
        "mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/secrets && \
         ln -s {} /run/secrets/API_KEY && chown -h 1000:1000 /run/secrets /run/secrets/API_KEY",
        root_only.display()
    );
    let run = sb.run(&setup, &["/bin/sh", "-c", "echo \"API_KEY=$API_KEY\""]);
    assert!(
        !run.stdout.contains("root's own secret"),
        "root read the planted symlink's target for the agent: {}",
        describe(&run)
    );
    assert_eq!(run.code, Some(71), "{}", describe(&run));
    assert!(
        run.stderr
            .contains("failed to trust /run/secrets: it is owned by uid 1000, not by root"),
        "{}",
        describe(&run)
    );
}

/// `/usr/local` as a careless image leaves it (`owner`), holding `bin/` (root's) with an
/// empty `sandbox-init` for the bind mount; and the setup that mounts it over `/usr/local`,
/// bind-mounts sandbox-init at `/usr/local/bin/sandbox-init` as jailoc's compose does, and
/// boots from there.
fn mounted_sandbox_init(sb: &Sandbox, owner: u32) -> String {
    let local = sb.tmp.subdir(&format!("usr-local-{owner}"), 0o755);
    let bin = local.join("bin");
    fs::create_dir(&bin).expect("mkdir bin");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(bin.join("sandbox-init"), "").expect("mount point");
    chown(&local, Some(owner), Some(owner)).expect("chown");
    format!(
        "mount --bind {} /usr/local && mount --bind {} /usr/local/bin/sandbox-init && \
         shift && exec /usr/local/bin/sandbox-init \"$@\"",
        local.display(),
        jailoc_tests::sandbox_init().display()
    )
}

/// The engine runs `/usr/local/bin/sandbox-init` as root with the container's capabilities
/// for the health check (every few seconds) and every `jailoc shell`. The bind mount cannot be
/// moved from inside, but in an image that gives the agent `/usr/local` the agent can move
/// `/usr/local/bin` aside and put its own `sandbox-init` in a new one: the next health check
/// runs it as root. sandbox-init, mounted, refuses to boot (71) when any directory above its
/// own is not root's alone, so the agent never gets to do it.
#[test]
fn attack_agent_swaps_the_dir_above_the_mounted_sandbox_init_and_root_runs_its_program() {
    let Some(sb) = Sandbox::new("sandbox-init's own path") else {
        return;
    };
    // Control: the same layout with root's /usr/local boots and runs the agent.
    let run = sb.run(
        &mounted_sandbox_init(&sb, 0),
        &["/bin/sh", "-c", "echo '{\"cmd\":\"booted\"}'"],
    );
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    assert!(run.stdout.contains("booted"), "{}", describe(&run));

    let ran = sb.markers.join("planted-ran");
    let go = sb.markers.join("go");
    let agent = format!(
        "mv /usr/local/bin /usr/local/bin.moved && mkdir /usr/local/bin && \
         printf '#!/bin/sh\\nid -u > {ran}\\n' > /usr/local/bin/sandbox-init && \
         chmod 755 /usr/local/bin/sandbox-init && echo '{{\"cmd\":\"ready\"}}'\n\
         while [ ! -e {go} ]; do sleep 0.02; done",
        ran = ran.display(),
        go = go.display()
    );
    let mut running = sb.start(&mounted_sandbox_init(&sb, 1000), &["/bin/sh", "-c", &agent]);
    let mut line = String::new();
    let mut planted = false;
    while std::io::BufRead::read_line(&mut running.stdout, &mut line).expect("read") > 0 {
        if line.contains("\"ready\"") {
            planted = true;
            break;
        }
        line.clear();
    }
    if planted {
        // The engine's health check: root, in the container's mount namespace.
        let pid = running.init_pid().to_string();
        let _ = std::process::Command::new("nsenter")
            .args([
                "-t",
                &pid,
                "-m",
                "--",
                "/usr/local/bin/sandbox-init",
                "--health",
            ])
            .output();
        fs::write(&go, "").expect("go");
    }
    let (code, stderr) = running.finish();
    assert!(
        !ran.exists(),
        "root ran the agent's sandbox-init (uid {})",
        fs::read_to_string(&ran).unwrap_or_default().trim()
    );
    assert!(
        !planted,
        "the agent ran and swapped the directory: {stderr}"
    );
    assert_eq!(code, Some(71), "{stderr}");
    assert!(
        stderr.contains(
            "failed to run from /usr/local/bin/sandbox-init: failed to trust /usr/local: it is \
             owned by uid 1000, not by root"
        ),
        "{stderr}"
    );
}
