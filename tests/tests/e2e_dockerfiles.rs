//! Structure tests of the shipped Dockerfiles. The default OpenCode image pulls from registries
//! that the test machines cannot reach, so it is checked by parsing: the properties a user relies
//! on (one stage on the runtime base, pinned OpenCode, the agent user, no sudo, sandbox-init as
//! ENTRYPOINT, the tools an agent needs) must not silently disappear in an edit.

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
}

/// The value of `${NAME}` references in `text`, from the ARG defaults of `ins`.
fn expand_args(ins: &[Instruction], text: &str) -> String {
    let mut out = text.to_owned();
    while let Some(start) = out.find("${") {
        let end = out[start..].find('}').expect("closing brace") + start;
        let name = &out[start + 2..end];
        let value = arg_default(ins, name).unwrap_or_else(|| panic!("no default for ARG {name}"));
        out.replace_range(start..=end, value);
    }
    out
}

/// The first `jailoc up` builds this file: it must pull the runtime base and nothing else (no
/// Rust toolchain, no second stage), and take sandbox-init from the build context the launcher
/// writes (the Dockerfile and the static binary, nothing else).
#[test]
fn opencode_image_is_one_stage_on_the_runtime_base_and_needs_only_the_launchers_context() {
    let ins = read("dockerfiles/opencode.Dockerfile");
    let froms: Vec<String> = ins
        .iter()
        .filter(|i| i.keyword == "FROM")
        .map(|i| expand_args(&ins, &i.args))
        .collect();
    assert_eq!(
        froms,
        ["node:22-bookworm-slim"],
        "exactly one stage, the runtime base"
    );
    for i in &ins {
        let words: Vec<&str> = i.args.split_whitespace().collect();
        assert!(
            !words
                .iter()
                .any(|w| ["cargo", "rustc", "rustup"].contains(w)),
            "line {}: no Rust toolchain in the image build: {} {}",
            i.line,
            i.keyword,
            i.args
        );
        assert!(
            !(matches!(i.keyword.as_str(), "COPY" | "ADD") && i.args.starts_with("--from")),
            "line {}: no other image or stage to copy from: {}",
            i.line,
            i.args
        );
    }
    // Every COPY/ADD source is in the launcher's context (image.rs writes exactly these).
    let sources: Vec<&str> = ins
        .iter()
        .filter(|i| matches!(i.keyword.as_str(), "COPY" | "ADD"))
        .map(|i| i.args.split_whitespace().next().expect("a source"))
        .collect();
    assert_eq!(sources, ["sandbox-init"]);
    let stage = final_stage(&ins);
    assert!(
        stage
            .iter()
            .any(|i| i.keyword == "COPY" && i.args == "sandbox-init /usr/local/bin/sandbox-init"),
        "sandbox-init copied from the context to /usr/local/bin"
    );
}

/// What the default image carries besides OpenCode, each with its reason in the Dockerfile's
/// comment (the reasons are the contract: a package without one, or a reason without its
/// package, fails).
const IMAGE_PACKAGES: &[&str] = &[
    "iptables",
    "ca-certificates",
    "git",
    "openssh-client",
    "ripgrep",
    "curl",
    "jq",
    "python3",
    "procps",
];

#[test]
fn opencode_image_carries_the_tools_an_agent_reaches_for_each_with_its_reason() {
    let path = repo_root().join("dockerfiles/opencode.Dockerfile");
    let text = std::fs::read_to_string(&path).expect("read Dockerfile");
    let ins = parse_dockerfile(&text);
    let install = final_stage(&ins)
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("apt-get install"))
        .expect("a RUN that apt-get installs the tools");
    let after = install
        .args
        .split_once("--no-install-recommends")
        .expect("--no-install-recommends (no recommended extras)")
        .1;
    let packages: Vec<&str> = after
        .split("&&")
        .next()
        .expect("packages")
        .split_whitespace()
        .collect();
    assert_eq!(packages, IMAGE_PACKAGES, "the image's package list");
    // The comment block above it names each package at the start of a line, then its reason.
    let reasons: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("What a working agent reaches for first"))
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("#   "))
        .filter_map(|l| {
            let (name, reason) = l.split_once(char::is_whitespace)?;
            (!name.is_empty() && !reason.trim().is_empty()).then_some(name)
        })
        .collect();
    assert_eq!(reasons, IMAGE_PACKAGES, "one reason per package, in order");
    assert!(
        install.args.contains("rm -rf /var/lib/apt/lists/*"),
        "the package lists do not stay in the image"
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
