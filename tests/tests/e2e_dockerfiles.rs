//! Structure tests of the shipped Dockerfiles. The default OpenCode image pulls from registries
//! that the test machines cannot reach, so it is checked by parsing: the properties a user relies
//! on (pinned OpenCode, the agent user, no sudo, sandbox-init as ENTRYPOINT, iptables present)
//! must not silently disappear in an edit.

use jailoc_tests::docker::{parse_dockerfile, repo_root, Instruction};

fn read(rel: &str) -> Vec<Instruction> {
    let path = repo_root().join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()));
    parse_dockerfile(&text)
}

/// Instructions of the last stage (what `docker run` gets).
fn final_stage(ins: &[Instruction]) -> &[Instruction] {
    let last_from = ins
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("a FROM instruction");
    &ins[last_from..]
}

/// The value an `ARG NAME=value` sets (anywhere in the file).
fn arg_default<'a>(ins: &'a [Instruction], name: &str) -> Option<&'a str> {
    ins.iter()
        .filter(|i| i.keyword == "ARG")
        .find_map(|i| i.args.strip_prefix(&format!("{name}=")))
}

#[test]
fn opencode_image_pins_the_vendored_opencode_version() {
    let ins = read("dockerfiles/opencode.Dockerfile");
    let version = arg_default(&ins, "OPENCODE_VERSION").expect("ARG OPENCODE_VERSION=...");
    assert_eq!(version, "1.18.33", "pinned opencode-ai version");
    // The e2e tests run the vendored build of the same version: keep them in step.
    let vendored = jailoc_tests::docker::vendored_opencode_tgz();
    assert!(
        vendored
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(&format!("-{version}.tgz"))),
        "vendored tarball {} is not opencode {version}",
        vendored.display()
    );
    let install = final_stage(&ins)
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("npm install"))
        .expect("a RUN that npm-installs opencode");
    assert!(
        install.args.contains("opencode-ai@${OPENCODE_VERSION}"),
        "npm install must use the pinned version, got: {}",
        install.args
    );
}

#[test]
fn opencode_image_has_agent_uid_1000_and_no_sudo() {
    let ins = read("dockerfiles/opencode.Dockerfile");
    let stage = final_stage(&ins);
    let useradd = stage
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("useradd"))
        .expect("a RUN that creates the agent user");
    let words: Vec<&str> = useradd.args.split_whitespace().collect();
    let uid = words
        .windows(2)
        .find(|w| w[0] == "--uid" || w[0] == "-u")
        .map(|w| w[1]);
    assert_eq!(uid, Some("1000"), "agent UID in: {}", useradd.args);
    assert!(
        useradd.args.contains(" agent"),
        "user is called agent: {}",
        useradd.args
    );
    for i in stage {
        assert!(
            !i.args
                .split_whitespace()
                .any(|w| w == "sudo" || w == "doas"),
            "line {}: the agent image must not install or use sudo: {} {}",
            i.line,
            i.keyword,
            i.args
        );
        assert!(
            !(i.keyword == "RUN" && i.args.contains("sudoers")),
            "line {}: no sudoers edits",
            i.line
        );
    }
    // sandbox-init must start as root to install the rules; it drops to 1000 itself.
    if let Some(user) = stage.iter().rfind(|i| i.keyword == "USER") {
        assert!(
            user.args == "root" || user.args == "0",
            "line {}: final USER must be root for sandbox-init, got {}",
            user.line,
            user.args
        );
    }
}

#[test]
fn opencode_image_runs_sandbox_init_as_entrypoint_with_iptables() {
    let ins = read("dockerfiles/opencode.Dockerfile");
    let stage = final_stage(&ins);
    let entry = stage
        .iter()
        .rfind(|i| i.keyword == "ENTRYPOINT")
        .expect("an ENTRYPOINT");
    assert_eq!(entry.args, r#"["/usr/local/bin/sandbox-init", "--"]"#);
    let cmd = stage.iter().rfind(|i| i.keyword == "CMD").expect("a CMD");
    assert!(
        cmd.args.starts_with(r#"["opencode", "serve""#),
        "CMD serves opencode: {}",
        cmd.args
    );
    assert!(
        stage.iter().any(|i| i.keyword == "RUN"
            && i.args.contains("apt-get install")
            && i.args.split_whitespace().any(|w| w == "iptables")),
        "iptables must be installed (sandbox-init runs iptables-restore)"
    );
    // sandbox-init comes from the builder stage, which compiles it from this repository.
    let builder = ins
        .iter()
        .find(|i| i.keyword == "FROM" && i.args.contains(" AS "))
        .expect("a named builder stage");
    let builder_name = builder.args.rsplit(' ').next().expect("stage name");
    assert!(
        ins.iter().any(|i| i.keyword == "RUN"
            && i.args.contains("cargo build")
            && i.args.contains("--release")
            && i.args.contains("-p sandbox-init")),
        "the builder compiles sandbox-init in release mode"
    );
    assert!(
        ins.iter().any(|i| i.keyword == "RUN"
            && i.args
                .contains("cp target/x86_64-unknown-linux-gnu/release/sandbox-init /sandbox-init")),
        "the builder takes the static target's binary (.cargo/config.toml: crt-static)"
    );
    assert!(
        ins.iter().any(|i| i.keyword == "RUN"
            && i.args
                .contains("install -m 0755 sandbox-init /sandbox-init")),
        "a context with a prebuilt sandbox-init (the launcher's) works too"
    );
    assert!(
        stage.iter().any(|i| i.keyword == "COPY"
            && i.args
                .starts_with(&format!("--from={builder_name} /sandbox-init "))
            && i.args.ends_with("/usr/local/bin/sandbox-init")),
        "sandbox-init copied from {builder_name} to /usr/local/bin"
    );
}

#[test]
fn sandbox_init_image_holds_only_the_binary() {
    let ins = read("dockerfiles/sandbox-init.Dockerfile");
    let kw: Vec<(&str, &str)> = ins
        .iter()
        .map(|i| (i.keyword.as_str(), i.args.as_str()))
        .collect();
    assert_eq!(
        kw,
        vec![
            ("FROM", "scratch"),
            ("COPY", "sandbox-init /sandbox-init"),
            ("ENTRYPOINT", r#"["/sandbox-init"]"#),
        ]
    );
}

#[test]
fn docs_adoption_lines_match_the_baked_test_image() {
    // docs/e2e.md tells other agents' images how to adopt sandbox-init; the baked test image is
    // built with exactly those lines, so the docs are exercised by the Docker tier.
    let docs = std::fs::read_to_string(repo_root().join("docs/e2e.md")).expect("docs/e2e.md");
    let baked = read("tests/images/baked/Dockerfile");
    assert!(
        docs.contains("COPY --from=jailoc/sandbox-init /sandbox-init /usr/local/bin/sandbox-init")
    );
    assert!(docs.contains(r#"ENTRYPOINT ["/usr/local/bin/sandbox-init", "--"]"#));
    assert!(baked.iter().any(|i| i.keyword == "COPY"
        && i.args == "--from=sandbox-init /sandbox-init /usr/local/bin/sandbox-init"));
    assert!(
        baked
            .iter()
            .any(|i| i.keyword == "ENTRYPOINT"
                && i.args == r#"["/usr/local/bin/sandbox-init", "--"]"#)
    );
}
