//! Black-box tests of the built `jailoc` binary. HOME and the XDG dirs live in a temp dir; a
//! fake `docker` / `docker-compose` (a shell script using only builtins) on PATH records every
//! argv and keeps container state in files, so `up` → `status` → `down` behave like an engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_jailoc");

const FAKE_ENGINE: &str = r#"#!/bin/sh
# Fake docker / docker-compose for jailoc's CLI tests.
d="$FAKE_DIR"
prog="${0##*/}"
{
  printf '%s' "$prog"
  for a in "$@"; do printf ' %s' "$a"; done
  printf '\n'
} >> "$d/argv.log"
pwd -P >> "$d/cwd.log"
if [ -n "$FAKE_ENV_DUMP" ]; then
  export -p >> "$d/env.dump"
fi
if [ -n "$FAKE_CRED_HELPER" ]; then
  # As docker runs its credential helper (docker-credential-*): by name, on PATH.
  "$FAKE_CRED_HELPER" get </dev/null >/dev/null 2>&1
fi
if [ -n "$OPENCODE_SERVER_PASSWORD" ]; then
  printf '%s\n' "$OPENCODE_SERVER_PASSWORD" >> "$d/env.log"
fi
compose=""
if [ "$prog" = docker ] && [ "$1" = compose ]; then
  if [ -n "$FAKE_NO_COMPOSE_PLUGIN" ]; then
    echo "docker: unknown command: docker compose" >&2
    exit 1
  fi
  shift
  compose=1
fi
[ "$prog" = docker-compose ] && compose=1
if [ -n "$compose" ]; then
  if [ "$1" = version ]; then echo "fake compose"; exit 0; fi
  project=""
  while [ $# -gt 0 ]; do
    case "$1" in
      -p) project="$2"; shift 2 ;;
      -f) shift 2 ;;
      *) break ;;
    esac
  done
  ws="${project#jailoc-}"
  case "$1" in
    up)
      [ -n "$FAKE_UP_CODE" ] && exit "$FAKE_UP_CODE"
      printf '%s\n' "${FAKE_UP_STATE:-running}" > "$d/state-$ws"; exit 0 ;;
    down)
      /bin/rm -f "$d/state-$ws"
      for a in "$@"; do [ "$a" = --volumes ] && /bin/rm -f "$d/volumes-$ws"; done
      exit 0 ;;
    logs) printf 'sandbox-init: error: fake log line\n'; exit 0 ;;
    exec)
      # The container stops while the exec session runs (its process dies with it).
      if [ -n "$FAKE_EXEC_STOPS" ]; then /bin/rm -f "$d/state-$ws"; exit 137; fi
      exit "${FAKE_EXEC_CODE:-0}" ;;
    *) exit "${FAKE_EXEC_CODE:-0}" ;;
  esac
fi
case "$1" in
  ps)
    if [ "$2" = -aq ]; then
      for f in "$d"/state-*; do
        [ -e "$f" ] || continue
        ws="${f##*/state-}"
        read -r how < "$f" || true
        if [ "$how" = go ]; then printf 'go-%s\n' "$ws"; else printf 'c-%s\n' "$ws"; fi
      done
      exit 0
    fi
    for f in "$d"/state-*; do
      [ -e "$f" ] || continue
      ws="${f##*/state-}"
      read -r how < "$f" || true
      case "$how" in
        go) printf '{"ID":"go-%s","Image":"jailoc-base:embedded","Labels":"com.docker.compose.project=jailoc-%s,com.docker.compose.service=opencode","Names":"jailoc-%s-opencode-1","State":"running","Status":"Up 3 hours (healthy)"}\n' "$ws" "$ws" "$ws" ;;
        restarting) printf '{"ID":"c-%s","Image":"img-%s","Labels":"com.docker.compose.project=jailoc-%s,com.docker.compose.service=opencode,dev.jailoc.workspace=%s","Names":"jailoc-%s_opencode_1","State":"restarting","Status":"Restarting (78) 1 second ago"}\n' "$ws" "$ws" "$ws" "$ws" "$ws" ;;
        *) printf '{"ID":"c-%s","Image":"img-%s","Labels":"com.docker.compose.project=jailoc-%s,com.docker.compose.service=opencode,dev.jailoc.workspace=%s","Names":"jailoc-%s_opencode_1","State":"running","Status":"Up 1 second (healthy)"}\n' "$ws" "$ws" "$ws" "$ws" "$ws" ;;
      esac
    done
    exit 0 ;;
  network)
    for f in "$d"/state-*; do [ -e "$f" ] && printf 'net-%s\n' "${f##*/state-}"; done
    exit 0 ;;
  stop) exit 0 ;;
  rm)
    for a in "$@"; do
      case "$a" in go-*|c-*) /bin/rm -f "$d/state-${a#*-}" ;; esac
    done
    exit 0 ;;
  stats) printf '{"BlockIO":"1MB / 0B","CPUPerc":"0.50%%","MemPerc":"1.00%%","MemUsage":"40MiB / 4GiB","NetIO":"1kB / 0B","PIDs":"12"}\n'; exit 0 ;;
  volume)
    for f in "$d"/volumes-*; do
      [ -e "$f" ] || continue
      while read -r v; do printf '%s\n' "$v"; done < "$f"
    done
    exit 0 ;;
  image) exit "${FAKE_IMAGE_MISSING:-0}" ;;
  build) echo "fake build output"; exit 0 ;;
esac
exit 0
"#;

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    bin: PathBuf,
    fake: PathBuf,
    extra: Vec<(String, String)>,
    cwd: PathBuf,
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

impl Env {
    /// A temp HOME with a project at ~/src/app, the fake engine (`docker` with the compose
    /// plugin and `docker-compose`) on PATH, and a stand-in sandbox-init.
    fn new() -> Self {
        // Not under /tmp: /tmp is one of the container directories workspace paths may not use.
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let root = std::fs::canonicalize(tmp.path()).expect("canonical");
        let home = root.join("home");
        let bin = root.join("bin");
        let fake = root.join("fake");
        for d in [&home.join("src/app"), &bin, &fake, &root.join("sbin")] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        write_exec(&bin.join("docker"), FAKE_ENGINE);
        write_exec(&bin.join("docker-compose"), FAKE_ENGINE);
        write_exec(&root.join("sbin/sandbox-init"), "#!/bin/sh\nexit 0\n");
        Env {
            _tmp: tmp,
            cwd: home.join("src/app"),
            root,
            home,
            bin,
            fake,
            extra: Vec::new(),
        }
    }

    fn config_file(&self) -> PathBuf {
        self.home.join(".config/jailoc/config.toml")
    }

    fn write_config(&self, text: &str) {
        let f = self.config_file();
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, text.replace("{home}", &self.home.to_string_lossy())).expect("write");
    }

    fn set(&mut self, k: &str, v: &str) {
        self.extra.push((k.into(), v.into()));
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", &self.bin)
            .env("FAKE_DIR", &self.fake)
            .env("JAILOC_SANDBOX_INIT", self.root.join("sbin/sandbox-init"))
            .current_dir(&self.cwd);
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c.output().expect("run jailoc")
    }

    fn argv_log(&self) -> String {
        std::fs::read_to_string(self.fake.join("argv.log")).unwrap_or_default()
    }

    /// The engine calls logged after the first `before` ones.
    fn calls_since(&self, before: usize) -> Vec<String> {
        self.argv_log()
            .lines()
            .skip(before)
            .map(String::from)
            .collect()
    }
}

/// `..` resolved lexically, as OpenCode's server does with a directory it is handed.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
                if out.as_os_str().is_empty() {
                    out.push("/");
                }
            }
            std::path::Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

const APP: &str = "[workspaces.app]\npaths = [\"~/src/app\"]\n";

#[test]
fn bad_configs_each_give_their_exact_error() {
    let env = Env::new();
    let home = env.home.to_string_lossy().into_owned();
    let cases: Vec<(&str, usize, &str, String)> = vec![
        (
            "[workspaces.Foo_bar]\npaths = []\n",
            1,
            "workspaces.Foo_bar",
            "invalid workspace name \"Foo_bar\": use only lowercase letters, digits and '-' (e.g. \"foo-bar\")".into(),
        ),
        (
            "[workspaces.a]\nallowed_networks = [\"999.0.0.0/99\"]\n",
            2,
            "workspaces.a.allowed_networks",
            "invalid entry \"999.0.0.0/99\": invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)".into(),
        ),
        // Once taken here and refused by sandbox-init (exit 78 in the container): the launcher
        // and sandbox-init now parse entries with the same grammar, and both refuse it so.
        (
            "[workspaces.a]\nallowed_hosts = [\"example.com:000080\"]\n",
            2,
            "workspaces.a.allowed_hosts",
            "invalid entry \"example.com:000080\": invalid port \"000080\": leading zeros are not allowed (write 80)".into(),
        ),
        (
            "[workspaces.a]\nallowed_networks = [\"10.0.0.0/0008\"]\n",
            2,
            "workspaces.a.allowed_networks",
            "invalid entry \"10.0.0.0/0008\": invalid prefix length \"0008\": leading zeros are not allowed (write /8)".into(),
        ),
        (
            "[workspaces.a]\npaths = [\"/etc\"]\n",
            2,
            "workspaces.a.paths",
            "path \"/etc\" is inside /etc, which the container needs for itself (workspace paths are mounted at the same path inside the container)".into(),
        ),
        (
            "[workspaces.a]\nmounts = [\"~/.ssh:/home/agent/.ssh:ro\"]\n",
            2,
            "workspaces.a.mounts",
            format!("invalid mount \"~/.ssh:/home/agent/.ssh:ro\": path \"~/.ssh\" (resolves to {home}/.ssh) would expose ~/.ssh to the agent"),
        ),
        (
            "[workspaces.a]\nmounts = [\"~/.local/share/opencode:/home/agent/.local/share/opencode\"]\n",
            2,
            "workspaces.a.mounts",
            format!("invalid mount \"~/.local/share/opencode:/home/agent/.local/share/opencode\": path \"~/.local/share/opencode\" (resolves to {home}/.local/share/opencode) would expose your host OpenCode's data directory (logins, sessions, snapshot repositories your host runs git on) to the agent"),
        ),
        (
            "[defaults]\nmounts = [\"~/.config:/home/agent/.config:ro\"]\n",
            2,
            "defaults.mounts",
            format!("invalid mount \"~/.config:/home/agent/.config:ro\": path \"~/.config\" (resolves to {home}/.config) would expose jailoc's own configuration (policies, passwords) to the agent"),
        ),
        (
            "[workspaces.a]\nimage = \"corp/agent:1\"\ndockerfile = \"Dockerfile\"\n",
            2,
            "workspaces.a.image",
            "image \"corp/agent:1\" cannot be combined with `dockerfile` in the same table: use `image` for a ready-made image, or `dockerfile` to build one".into(),
        ),
        (
            "[defaults]\n# tiny\nmemory = \"0m\"\n",
            3,
            "defaults.memory",
            "invalid memory \"0m\": use a whole number with an optional k, m or g suffix, at least 6m (e.g. \"512m\" or \"4g\")".into(),
        ),
        (
            "[workspaces.a]\npaths = []\nallowed_host = [\"x.org\"]\n",
            3,
            "workspaces.a.allowed_host",
            "unknown key \"allowed_host\" (did you mean `allowed_hosts`?)".into(),
        ),
        (
            "[workspaces.a]\npaths = [\n  \"~/src/app\",\n  \"~/../../../../../../../../../../../../../../etc\",\n]\n",
            4,
            "workspaces.a.paths",
            "path \"~/../../../../../../../../../../../../../../etc\" (resolves to /etc) is inside /etc, which the container needs for itself (workspace paths are mounted at the same path inside the container)".into(),
        ),
        (
            "[workspaces.a]\nenv = { OPENCODE_SERVER_PASSWORD = \"x\" }\n",
            2,
            "workspaces.a.env.OPENCODE_SERVER_PASSWORD",
            "\"OPENCODE_SERVER_PASSWORD\" is reserved: jailoc or sandbox-init sets it".into(),
        ),
        (
            "[workspaces.a]\negress = \"closed\"\n",
            2,
            "workspaces.a.egress",
            "invalid egress \"closed\": use \"open\" or \"allowlist\"".into(),
        ),
        (
            "[workspaces.a]\nsecrets = { GH_TOKEN = \"~/gh\" }\n",
            2,
            "workspaces.a.secrets.GH_TOKEN",
            "GH_TOKEN = \"~/gh\" is not a secret declaration: write [workspaces.a.secrets.env.GH_TOKEN] with from_file = \"~/gh\" (the agent gets $GH_TOKEN), or [workspaces.a.secrets.file.GH_TOKEN] for /run/secrets/GH_TOKEN only".into(),
        ),
        (
            "[defaults.secrets.env.TOKEN]\nfrom_env = \"GH_TOKEN\"\nfrom_file = \"/abs/key\"\n",
            2,
            "defaults.secrets.env.TOKEN",
            "secret \"TOKEN\": from_env and from_file are mutually exclusive: keep one".into(),
        ),
        (
            "[defaults.secrets.file.TOKEN]\n",
            1,
            "defaults.secrets.file.TOKEN",
            "secret \"TOKEN\" needs exactly one of from_env = \"HOSTVAR\" or from_file = \"/path\"".into(),
        ),
        (
            "[workspaces.w.secrets.env.TOKEN]\nfrom_env = \"A\"\n[workspaces.w.secrets.file.TOKEN]\nfrom_env = \"B\"\n",
            3,
            "workspaces.w.secrets.file.TOKEN",
            "secret \"TOKEN\" is declared in both secrets.env and secrets.file of this table (line 1): only one per scope".into(),
        ),
        (
            "[defaults.secrets.env.PATH]\nfrom_env = \"X\"\n",
            1,
            "defaults.secrets.env.PATH",
            "\"PATH\" is reserved: the container sets it".into(),
        ),
        (
            "[defaults.secrets.env.gh-token]\nfrom_env = \"X\"\n",
            1,
            "defaults.secrets.env.gh-token",
            "invalid name \"gh-token\": an environment secret's name must match ^[A-Za-z_][A-Za-z0-9_]*$".into(),
        ),
        (
            "[defaults.secrets.file.\"my.secret\"]\nfrom_file = \"/abs/x\"\n",
            1,
            "defaults.secrets.file.my.secret",
            "invalid name \"my.secret\": a file secret's name must match ^[a-zA-Z0-9_-]+$ (it becomes /run/secrets/NAME)".into(),
        ),
        (
            "[defaults.secrets.env.T]\nfrom_env = \"HOST-VAR\"\n",
            2,
            "defaults.secrets.env.T.from_env",
            "invalid from_env \"HOST-VAR\": a host environment variable name must match ^[A-Za-z_][A-Za-z0-9_]*$".into(),
        ),
        (
            "[defaults.secrets.env.T]\nfrom_file = \"relative/secret\"\n",
            2,
            "defaults.secrets.env.T.from_file",
            "path \"relative/secret\" must be absolute or start with ~/".into(),
        ),
        (
            "[defaults]\nmounts = [\"/var/log:/home/agent/logs:ro\"]\n",
            2,
            "defaults.mounts",
            "invalid mount \"/var/log:/home/agent/logs:ro\": path \"/var/log\" would expose the host's system directory /var to the agent".into(),
        ),
        (
            "[workspaces.a]\nmounts = [\"~/data:/opt/data\"]\n",
            2,
            "workspaces.a.mounts",
            "invalid mount \"~/data:/opt/data\": container path \"/opt/data\" is inside /opt, which the container needs for itself (its system, the sandbox's own files)".into(),
        ),
        (
            "[workspaces.a]\nmounts = [\"~/src/app:/home/agent/app\", \"~:/home/agent/me\"]\n",
            2,
            "workspaces.a.mounts",
            format!("invalid mount \"~:/home/agent/me\": path \"~\" (resolves to {home}) would expose your home directory to the agent"),
        ),
        (
            "[image]\nrepository = \"ghcr.io/x/y\"\n",
            1,
            "image",
            "[image] is an early Go jailoc table that is no longer read: move `dockerfile` to [base] and a ready-made `repository` to [defaults] image".into(),
        ),
        (
            "password_mode = \"vault\"\n",
            1,
            "password_mode",
            "invalid password_mode \"vault\": use \"auto\", \"env\", \"file\" or \"keyring\"".into(),
        ),
        (
            "[workspaces.a]\nmode = \"attach\"\n",
            2,
            "workspaces.a.mode",
            "invalid mode \"attach\": use \"remote\" (opencode attach on the host), \"exec\" (inside the container) or \"\" (auto)".into(),
        ),
        (
            "[defaults.secrets.env.T]\nfrom_fiel = \"/x\"\n",
            2,
            "defaults.secrets.env.T.from_fiel",
            "unknown key \"from_fiel\" (did you mean `from_file`?)".into(),
        ),
    ];
    let file = env.config_file();
    for (text, line, key, msg) in cases {
        env.write_config(text);
        let _ = std::fs::remove_file(env.fake.join("argv.log"));
        // `up` of the workspace the error is about (the implicit default inherits [defaults]).
        let ws = key
            .strip_prefix("workspaces.")
            .and_then(|k| k.split('.').next())
            .unwrap_or("default");
        let o = env.run(&["up", ws]);
        assert_eq!(o.status.code(), Some(78), "{text}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!(
                "jailoc: failed to load config: {}:{line}: {key}: {msg}\n",
                file.display()
            ),
            "config:\n{text}"
        );
        assert_eq!(env.argv_log(), "", "nothing runs when the config is bad");
        // A deny-list refusal is about what `up` would mount or copy: `status`, which mounts
        // and copies nothing, still works (and so do `down` and `config`). Every other error
        // is the file's and stops every command.
        let o = env.run(&["status"]);
        if msg.contains(" would expose ") {
            ok(&o);
        } else {
            assert_eq!(o.status.code(), Some(78), "{text}");
        }
    }
}

#[test]
fn first_use_creates_a_commented_config() {
    let env = Env::new();
    let o = env.run(&["config"]);
    ok(&o);
    let file = env.config_file();
    let text = std::fs::read_to_string(&file).expect("created");
    assert!(text.starts_with("# jailoc configuration."), "{text}");
    assert!(text.contains("# memory = \"4g\""));
    assert_eq!(mode(&file), 0o600);
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: created {} with commented defaults\n",
            file.display()
        )
    );
    assert!(
        stdout(&o).contains("workspace = \"default\"\n"),
        "{}",
        stdout(&o)
    );
}

/// The user sees the agent misuse an allowlisted host, removes it from `allowed_hosts` and runs
/// `jailoc up`. Only `policy.toml` changes (the compose file does not), and sandbox-init reads
/// it only at boot: `up` must recreate the container, not report it running with the old
/// rules, which would keep the host open to the agent.
#[test]
fn attack_allowlist_entry_removed_while_running_does_not_stay_open() {
    let env = Env::new();
    let allowlisted =
        format!("{APP}egress = \"allowlist\"\nallowed_hosts = [\"pypi.org\", \"exfil.example\"]\n");
    env.write_config(&allowlisted);
    ok(&env.run(&["up"]));
    let policy = env.home.join(".config/jailoc/workspaces/app/policy.toml");
    let compose = env.home.join(".cache/jailoc/app/docker-compose.yml");
    let compose_before = std::fs::read(&compose).expect("compose");
    env.write_config(&format!(
        "{APP}egress = \"allowlist\"\nallowed_hosts = [\"pypi.org\"]\n"
    ));
    let o = env.run(&["up"]);
    ok(&o);
    assert!(!std::fs::read_to_string(&policy)
        .expect("policy")
        .contains("exfil.example"));
    assert_eq!(std::fs::read(&compose).expect("compose"), compose_before);
    assert_eq!(
        stdout(&o),
        "workspace \"app\" is up on http://127.0.0.1:4096\n",
        "the running container kept the old policy"
    );
    let log = env.argv_log();
    let last_up = log.lines().rfind(|l| l.contains(" up -d "));
    assert!(
        last_up.is_some_and(|l| l.ends_with(" up -d --remove-orphans --force-recreate")),
        "{log}"
    );
    // Unchanged again: nothing to recreate.
    let o = env.run(&["up"]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "workspace \"app\" is already running on http://127.0.0.1:4096\n"
    );
}

#[test]
fn up_twice_says_already_running() {
    let env = Env::new();
    env.write_config(APP);
    let o = env.run(&["up"]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "workspace \"app\" is up on http://127.0.0.1:4096\n"
    );
    let compose = env.home.join(".cache/jailoc/app/docker-compose.yml");
    assert_eq!(mode(&compose), 0o600);
    let policy = env.home.join(".config/jailoc/workspaces/app/policy.toml");
    assert!(std::fs::read_to_string(policy)
        .expect("policy")
        .contains("egress = \"open\"\n"));
    let up_line = format!(
        "docker compose -p jailoc-app -f {} up -d --remove-orphans",
        compose.display()
    );
    assert!(env.argv_log().contains(&up_line), "{}", env.argv_log());

    let o = env.run(&["up"]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "workspace \"app\" is already running on http://127.0.0.1:4096\n"
    );
    assert_eq!(
        env.argv_log().matches(" up -d ").count(),
        1,
        "{}",
        env.argv_log()
    );

    // A changed config is applied even though the project runs.
    env.write_config("[workspaces.app]\npaths = [\"~/src/app\"]\nmemory = \"2g\"\n");
    let o = env.run(&["up"]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "workspace \"app\" is up on http://127.0.0.1:4096\n"
    );
    assert_eq!(env.argv_log().matches(" up -d ").count(), 2);
}

#[test]
fn password_is_generated_once_and_never_on_a_command_line() {
    let env = Env::new();
    env.write_config(APP);
    ok(&env.run(&["up"]));
    let pw_file = env.home.join(".config/jailoc/passwords/app.env");
    assert_eq!(mode(&pw_file), 0o600);
    let text = std::fs::read_to_string(&pw_file).expect("password file");
    let pw = text
        .trim()
        .strip_prefix("OPENCODE_SERVER_PASSWORD=")
        .expect("key")
        .to_string();
    assert_eq!(pw.len(), 64);
    ok(&env.run(&["restart"]));
    ok(&env.run(&["shell"]));
    ok(&env.run(&["config"]));
    assert_eq!(
        std::fs::read_to_string(&pw_file).expect("same"),
        text,
        "kept"
    );
    let log = env.argv_log();
    assert!(log.contains(" up -d "), "{log}");
    assert!(
        log.contains(" down --remove-orphans\n"),
        "restart keeps volumes: {log}"
    );
    assert!(!log.contains(&pw), "password leaked onto argv:\n{log}");
    let compose =
        std::fs::read_to_string(env.home.join(".cache/jailoc/app/docker-compose.yml")).expect("c");
    assert!(
        !compose.contains(&pw),
        "the compose file refers to the env file"
    );
    assert!(compose.contains(&format!("      - \"{}\"\n", pw_file.display())));
    let config_out = stdout(&env.run(&["config"]));
    assert!(!config_out.contains(&pw));
}

#[test]
fn shell_enters_through_sandbox_init_never_as_root() {
    let env = Env::new();
    env.write_config(APP);
    let o = env.run(&["shell"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        "jailoc: failed to open a shell: workspace \"app\" was never started (run `jailoc up`)\n"
    );
    ok(&env.run(&["up"]));
    ok(&env.run(&["shell"]));
    let log = env.argv_log();
    let last = log.lines().last().expect("a call");
    let compose = env.home.join(".cache/jailoc/app/docker-compose.yml");
    assert_eq!(
        last,
        format!(
            "docker compose -p jailoc-app -f {} exec --user 0:0 -T opencode /usr/local/bin/sandbox-init --config-dir /etc/jailoc --enter -- sh -c if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi",
            compose.display()
        )
    );
    let mut env2 = env;
    env2.set("FAKE_EXEC_CODE", "7");
    assert_eq!(
        env2.run(&["shell"]).status.code(),
        Some(7),
        "exit code passes through"
    );
}

#[test]
fn status_json_shows_every_workspace_from_one_query() {
    let env = Env::new();
    std::fs::create_dir_all(env.home.join("src/web")).expect("mkdir");
    env.write_config(
        "[workspaces.app]\npaths = [\"~/src/app\"]\n[workspaces.web]\npaths = [\"~/src/web\"]\negress = \"allowlist\"\nexpose_port = false\n",
    );
    ok(&env.run(&["up"]));
    let before = env.argv_log().lines().count();
    let o = env.run(&["status", "--json"]);
    ok(&o);
    let calls = env.calls_since(before);
    assert_eq!(
        calls,
        ["docker ps -a --filter label=com.docker.compose.project --format {{json .}}"]
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let rows = v.as_array().expect("array");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["app", "default", "web"]);
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[0]["health"], "healthy");
    assert_eq!(rows[0]["port"], 4096);
    assert_eq!(rows[0]["url"], "http://127.0.0.1:4096");
    assert_eq!(rows[0]["image"], "img-app");
    // Ports as the Go jailoc numbers them: the configured workspaces; the implicit default
    // after them.
    assert_eq!(rows[1]["port"], 4098);
    assert_eq!(rows[2]["state"], "stopped");
    assert_eq!(rows[2]["port"], serde_json::Value::Null);
    assert_eq!(rows[2]["egress"], "allowlist");

    let table = stdout(&env.run(&["status"]));
    let first: Vec<&str> = table.lines().collect();
    assert_eq!(
        first[0].split_whitespace().collect::<Vec<_>>(),
        ["WORKSPACE", "STATE", "PORT", "EGRESS", "IMAGE"]
    );
    assert!(first[1].starts_with("app "), "{table}");
    assert!(first[1].contains("running (healthy)  4096 "), "{table}");

    // One workspace in detail, as the Go jailoc shows it (positional or -w).
    let pw = env.home.join(".config/jailoc/passwords/app.env");
    let detail = format!(
        "Workspace: app\nStatus:    running (healthy)\nPort:      4096 (http://127.0.0.1:4096)\nPassword:  file ({})\nEgress:    open\nImage:     img-app\nCPU:       0.50%\nMemory:    40MiB / 4GiB (1.00%)\nPIDs:      12\nNet I/O:   1kB / 0B\nBlock I/O: 1MB / 0B\nUptime:    1 second\n",
        pw.display()
    );
    for args in [vec!["status", "app"], vec!["-w", "app", "status"]] {
        let o = env.run(&args);
        ok(&o);
        assert_eq!(stdout(&o), detail, "{args:?}");
    }
    let o = env.run(&["status", "app", "--json"]);
    let d: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(d["stats"]["pids"], "12");
    assert_eq!(d["uptime"], "1 second");
    let o = env.run(&["status", "web"]);
    assert_eq!(
        stdout(&o),
        format!(
            "Workspace: web\nStatus:    stopped\nPort:      not published (exec only)\nPassword:  file ({}, written at the next up)\nEgress:    allowlist\nImage:     built-in OpenCode image\n\nRun `jailoc logs web` to see the container's output.\n",
            env.home.join(".config/jailoc/passwords/web.env").display()
        )
    );

    // `down` keeps volumes and says which; `--volumes` names them and deletes them.
    std::fs::write(env.fake.join("volumes-app"), "jailoc-app_jailoc-docker\n").expect("write");
    let o = env.run(&["down", "app"]);
    ok(&o);
    assert!(
        env.argv_log().ends_with(" down --remove-orphans\n"),
        "{}",
        env.argv_log()
    );
    assert!(
        stdout(&o).ends_with("workspace \"app\" is down\nkept 1 volume: jailoc-app_jailoc-docker (`jailoc down --volumes app` deletes them)\n"),
        "{}",
        stdout(&o)
    );
    assert!(env.fake.join("volumes-app").exists());
    let o = env.run(&["down", "--volumes", "app"]);
    ok(&o);
    assert!(stderr(&o).contains("jailoc: deleting volumes: jailoc-app_jailoc-docker\n"));
    assert!(env
        .argv_log()
        .ends_with(" down --remove-orphans --volumes\n"));
    let o = env.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v[0]["state"], "stopped");
}

/// The Go jailoc's compose file (same path, same project) and its running container, named
/// volumes (its sessions) and allowlist files: `status` shows it running, `down` stops its
/// containers and networks without Compose and without touching a volume, and `up` replaces it,
/// keeping the volumes, and removes the allowlist files sandbox-init would otherwise merge.
#[test]
fn switching_from_the_go_jailoc_loses_nothing() {
    let env = Env::new();
    env.write_config(APP);
    let cache = env.home.join(".cache/jailoc/app");
    std::fs::create_dir_all(&cache).expect("mkdir");
    let go_compose = "# Generated by jailoc — do not edit manually\nname: jailoc-app\n\nservices:\n  opencode:\n    image: jailoc-base:embedded\n    volumes:\n      - opencode-data-app:/home/agent/.local/share/opencode\n";
    std::fs::write(cache.join("docker-compose.yml"), go_compose).expect("write");
    std::fs::write(env.fake.join("state-app"), "go\n").expect("write");
    let vols = "jailoc-app_opencode-data-app\njailoc-app_opencode-cache-app\n";
    std::fs::write(env.fake.join("volumes-app"), vols).expect("write");
    let policy = env.home.join(".config/jailoc/workspaces/app");
    std::fs::create_dir_all(&policy).expect("mkdir");
    std::fs::write(policy.join("allowed-hosts"), "10.99.0.5:5432\n").expect("write");
    std::fs::write(policy.join("allowed-networks"), "10.99.0.0/16\n").expect("write");

    let o = env.run(&["status", "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v[0]["name"], "app");
    assert_eq!(v[0]["state"], "running");
    assert_eq!(v[0]["go_jailoc"], true);
    assert!(stdout(&env.run(&["status"])).contains("running (healthy) [Go jailoc]"));

    let before = env.argv_log().lines().count();
    let o = env.run(&["down", "app"]);
    ok(&o);
    let calls = env.calls_since(before);
    assert_eq!(
        calls,
        [
            "docker compose version",
            "docker ps -a --filter label=dev.jailoc.run --filter label=dev.jailoc.workspace=app --format {{json .}}",
            "docker volume ls --filter label=com.docker.compose.project=jailoc-app --format {{.Name}}",
            "docker ps -aq --filter label=com.docker.compose.project=jailoc-app",
            "docker network ls -q --filter label=com.docker.compose.project=jailoc-app",
            "docker stop go-app",
            "docker rm go-app",
            "docker network rm net-app",
        ]
    );
    assert!(
        stdout(&o).ends_with("workspace \"app\" is down\nkept the Go jailoc's volumes: jailoc-app_opencode-data-app, jailoc-app_opencode-cache-app (its sessions; `docker volume rm` deletes one you no longer need)\n"),
        "{}",
        stdout(&o)
    );
    // --volumes does not delete the Go jailoc's volumes either.
    std::fs::write(env.fake.join("state-app"), "go\n").expect("write");
    ok(&env.run(&["down", "--volumes", "app"]));
    assert!(env.fake.join("volumes-app").exists());

    // `up` replaces the Go jailoc's containers, keeps its volumes, and removes its allowlists.
    std::fs::write(env.fake.join("state-app"), "go\n").expect("write");
    let o = env.run(&["up", "app"]);
    ok(&o);
    assert!(stdout(&o).starts_with("workspace \"app\" was started by the Go jailoc: replacing its containers; its volumes are kept (jailoc-app_opencode-data-app holds its sessions"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(&format!(
            "jailoc: removed from {}: allowed-hosts, allowed-networks (that directory is jailoc's alone: the container enforces exactly the policy `jailoc config` shows)\n",
            policy.display()
        )),
        "{}",
        stderr(&o)
    );
    let mut left: Vec<String> = std::fs::read_dir(&policy)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["policy.toml", "secret-env"]);
    assert!(env.fake.join("volumes-app").exists());
    let log = env.argv_log();
    assert!(!log.contains("--volumes"), "{log}");
    assert!(!log.contains("volume rm"), "{log}");
    let ours = std::fs::read_to_string(cache.join("docker-compose.yml")).expect("compose");
    assert!(ours.starts_with("# Generated by jailoc for workspace \"app\""));
}

#[test]
fn add_keeps_comments_and_layout() {
    let env = Env::new();
    std::fs::create_dir_all(env.home.join("src/other")).expect("mkdir");
    let original = "# my settings\n[defaults]\nmemory = \"2g\"   # enough\n\n# projects\n[workspaces.app]\npaths = [\"~/src/app\"]  # main\n";
    env.write_config(original);
    let o = env.run(&["add", "-w", "app", "../other"]);
    ok(&o);
    let other = env.home.join("src/other");
    assert_eq!(
        stdout(&o),
        format!(
            "added {} to workspace \"app\" in {}\n",
            other.display(),
            env.config_file().display()
        )
    );
    let text = std::fs::read_to_string(env.config_file()).expect("read");
    assert_eq!(
        text,
        format!(
            "# my settings\n[defaults]\nmemory = \"2g\"   # enough\n\n# projects\n[workspaces.app]\npaths = [\"~/src/app\", \"{}\"]  # main\n",
            other.display()
        )
    );
    // Current directory into a new workspace; a second add is a no-op.
    let o = env.run(&["add", "-w", "new-one"]);
    ok(&o);
    let o = env.run(&["add", "-w", "new-one"]);
    assert!(stdout(&o).contains("is already in workspace \"new-one\""));
    let text = std::fs::read_to_string(env.config_file()).expect("read");
    assert!(
        text.ends_with(&format!(
            "\n[workspaces.new-one]\npaths = [\"{}\"]\n",
            env.cwd.display()
        )),
        "{text}"
    );
    // A forbidden path is refused and the file left alone.
    let o = env.run(&["add", "-w", "app", "/etc"]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        std::fs::read_to_string(env.config_file()).expect("read"),
        text
    );
}

#[test]
fn no_engine_installed_says_what_to_install() {
    let mut env = Env::new();
    env.write_config(APP);
    std::fs::remove_file(env.bin.join("docker")).expect("rm");
    std::fs::remove_file(env.bin.join("docker-compose")).expect("rm");
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(69));
    assert_eq!(
        stderr(&o),
        "jailoc: failed to find a container engine: none of `docker compose`, `docker-compose`, `podman compose` works (`docker compose` is not installed; `docker-compose` is not installed; `podman compose` is not installed); install Docker with the Compose plugin (or docker-compose, or Podman with podman-compose), or set JAILOC_COMPOSE to the command to use\n"
    );
    let o = env.run(&["status"]);
    assert_eq!(o.status.code(), Some(69));
    assert_eq!(
        stderr(&o),
        "jailoc: failed to find a container engine: none of `docker compose`, `docker-compose`, `podman compose` works (`docker` is not installed); install Docker with the Compose plugin (or docker-compose, or Podman with podman-compose), or set JAILOC_COMPOSE to the command to use\n"
    );
    env.set("JAILOC_COMPOSE", "nerdctl compose");
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
}

#[test]
fn falls_back_to_docker_compose_v1() {
    let mut env = Env::new();
    env.write_config(APP);
    env.set("FAKE_NO_COMPOSE_PLUGIN", "1");
    ok(&env.run(&["up"]));
    let compose = env.home.join(".cache/jailoc/app/docker-compose.yml");
    let log = env.argv_log();
    assert!(
        log.starts_with("docker compose version\ndocker-compose version\n"),
        "{log}"
    );
    assert!(log.contains(&format!(
        "docker-compose -p jailoc-app -f {} up -d --remove-orphans\n",
        compose.display()
    )));
}

#[test]
fn override_file_is_a_second_compose_file() {
    let env = Env::new();
    env.write_config(APP);
    let over = env
        .home
        .join(".config/jailoc/workspaces/app/compose.override.yml");
    std::fs::create_dir_all(over.parent().expect("p")).expect("mkdir");
    std::fs::write(&over, "version: \"2.4\"\n").expect("write");
    ok(&env.run(&["up"]));
    let compose = env.home.join(".cache/jailoc/app/docker-compose.yml");
    assert!(env.argv_log().contains(&format!(
        "-p jailoc-app -f {} -f {} up -d",
        compose.display(),
        over.display()
    )));
}

#[test]
fn missing_sandbox_init_is_a_clear_error() {
    let mut env = Env::new();
    env.write_config(APP);
    env.set("JAILOC_SANDBOX_INIT", "/nonexistent/sandbox-init");
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(72));
    assert_eq!(
        stderr(&o),
        "jailoc: failed to find sandbox-init: JAILOC_SANDBOX_INIT=/nonexistent/sandbox-init is not a file; install it next to jailoc (`scripts/install` does) or set JAILOC_SANDBOX_INIT=/path/to/sandbox-init\n"
    );
    assert!(!env.argv_log().contains(" up "), "nothing started");
}

#[test]
fn engine_failure_exits_1_and_builds_stream() {
    let mut env = Env::new();
    env.write_config(APP);
    env.set("FAKE_UP_CODE", "3");
    env.set("FAKE_IMAGE_MISSING", "1");
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("fake build output"),
        "build output reaches the user"
    );
    let log = env.argv_log();
    let build = log
        .lines()
        .find(|l| l.starts_with("docker build -t jailoc-base:"))
        .expect("built the embedded image");
    let base = env.home.join(".cache/jailoc/base");
    assert!(build.ends_with(&format!(
        "-f {}/Dockerfile {}",
        base.display(),
        base.display()
    )));
    assert!(
        base.join("sandbox-init").is_file(),
        "the companion is in the build context"
    );
    assert!(
        stderr(&o).ends_with("` exited with code 3\n"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).starts_with("jailoc: building image jailoc-base:"));
}

#[test]
fn workspace_follows_the_current_directory() {
    let mut env = Env::new();
    std::fs::create_dir_all(env.home.join("src/app/deep/er")).expect("mkdir");
    std::fs::create_dir_all(env.home.join("src/web")).expect("mkdir");
    env.write_config(
        "[workspaces.web]\npaths = [\"~/src/web\"]\n[workspaces.app]\npaths = [\"~/src/app\"]\n",
    );
    env.cwd = env.home.join("src/app/deep/er");
    assert!(stdout(&env.run(&["config"])).contains("workspace = \"app\"\n"));
    env.cwd = env.home.join("src/web");
    assert!(stdout(&env.run(&["config"])).contains("workspace = \"web\"\n"));
    env.cwd = env.home.clone();
    assert!(stdout(&env.run(&["config"])).contains("workspace = \"default\"\n"));
    let o = env.run(&["config", "-w", "ap"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("no workspace named \"ap\" (did you mean \"app\"?)"));
}

/// An input `up` reads or builds from that lies in a project (the Go docs' `overlay.Dockerfile`
/// inside it, an env file the agent made a FIFO) is refused by `up`, naming file, line and key,
/// but never blocks what reads no such input: `down`, `status` and `config` work, and none of
/// them opens the FIFO (which would hang them).
#[test]
fn attack_inputs_refused_for_up_never_block_down_status_or_config() {
    let env = Env::new();
    let app = env.home.join("src/app");
    std::fs::write(app.join("overlay.Dockerfile"), "ARG BASE\nFROM ${BASE}\n").expect("write");
    let fifo = app.join(".env");
    let st = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(st.success());
    env.write_config(&format!(
        "{APP}dockerfile = \"~/src/app/overlay.Dockerfile\"\nenv_file = [\"~/src/app/.env\"]\n"
    ));
    let o = run_bounded(&env, &["up"]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: failed to load config: {}:4: workspaces.app.env_file: env file \"~/src/app/.env\" (resolves to {}/.env) is inside {}, which a container can write (workspaces.app.paths, line 2): the agent could set the next container's environment; keep env files outside every workspace path and read-write mount\n",
            env.config_file().display(),
            app.display(),
            app.display()
        )
    );
    for args in [
        vec!["down"],
        vec!["status"],
        vec!["status", "app"],
        vec!["config"],
    ] {
        let o = run_bounded(&env, &args);
        ok(&o);
    }
    let o = run_bounded(&env, &["config"]);
    assert!(
        stdout(&o).contains(&format!(
            "[env]\n# env file {} not read: it is inside {}, which a container can write (workspaces.app.paths, line 2)\n",
            fifo.display(),
            app.display()
        )),
        "{}",
        stdout(&o)
    );
}

/// Runs jailoc and fails the test if it does not finish (a blocked open of a FIFO would hang
/// it forever): a watchdog, not a timing assertion.
fn run_bounded(env: &Env, args: &[&str]) -> Output {
    let (tx, rx) = std::sync::mpsc::channel();
    let env_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut c = Command::new(BIN);
    c.args(&env_args)
        .env_clear()
        .env("HOME", &env.home)
        .env("PATH", &env.bin)
        .env("FAKE_DIR", &env.fake)
        .env("JAILOC_SANDBOX_INIT", env.root.join("sbin/sandbox-init"))
        .current_dir(&env.cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in &env.extra {
        c.env(k, v);
    }
    let child = c.spawn().expect("spawn");
    let id = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(out) => out.expect("run jailoc"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("jailoc {args:?} hung (it opened the FIFO)");
        }
    }
}

/// The engine follows symlinks in a bind mount's source when it creates the container. A
/// workspace path inside another workspace's path (or a mount of a project's subdirectory)
/// could be replaced by that agent with a symlink to ~/.ssh or the engine's socket before the
/// next `up`, which would then mount it. Such a source is refused; the outer one is fine.
#[test]
fn attack_mount_source_inside_another_writable_path_is_refused() {
    let env = Env::new();
    let home = env.home.display().to_string();
    std::fs::create_dir_all(env.home.join("src/app/data")).expect("mkdir");
    env.write_config(
        "[workspaces.all]\npaths = [\"~/src\"]\n[workspaces.app]\npaths = [\"~/src/app\"]\n[workspaces.other]\nmounts = [\"~/src/app/data:/home/agent/data:ro\"]\n",
    );
    ok(&env.run(&["up", "-w", "all"]));
    let why = "that container's agent could replace it with a symlink (to ~/.ssh, to the engine's socket) before the next `up`, and the engine would mount what it points to";
    for (ws, line, key, src, outer, outer_key, outer_line) in [
        (
            "app",
            4,
            "workspaces.app.paths",
            "src/app",
            "src",
            "workspaces.all.paths",
            2,
        ),
        (
            "other",
            6,
            "workspaces.other.mounts",
            "src/app/data",
            "src",
            "workspaces.all.paths",
            2,
        ),
    ] {
        let o = env.run(&["up", "-w", ws]);
        assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!(
                "jailoc: failed to load config: {}:{line}: {key}: {home}/{src} is inside {home}/{outer}, which a container can write ({outer_key}, line {outer_line}): {why}; mount {home}/{outer} itself, or a directory outside it\n",
                env.config_file().display()
            )
        );
    }
}

/// `${VAR}` in `env` and env-file values means what it means in the Go jailoc's compose file:
/// the host's variable at `up` (`$$` for a literal `$`). jailoc expands it and writes every `$`
/// of the result doubled, so Compose interpolates nothing itself.
#[test]
fn env_values_expand_host_variables_like_the_go_jailoc() {
    let mut env = Env::new();
    let envfile = env.home.join("jailoc/app.env");
    std::fs::create_dir_all(envfile.parent().expect("dir")).expect("mkdir");
    std::fs::write(&envfile, "FROM_FILE=${GH}-file\n").expect("write");
    env.write_config(&format!(
        "{APP}env = [\"GITHUB_TOKEN=${{GH}}\", \"LITERAL=$$GH and $${{GH}}\", \"DEF=${{NOPE:-fallback}}\", \"GONE=${{NOPE}}\"]\nenv_file = [\"~/jailoc/app.env\"]\n"
    ));
    env.set("GH", "ghp_123");
    let o = env.run(&["up"]);
    ok(&o);
    let compose = std::fs::read_to_string(env.home.join(".cache/jailoc/app/docker-compose.yml"))
        .expect("compose");
    for line in [
        "      GITHUB_TOKEN: \"ghp_123\"\n",
        "      LITERAL: \"$$GH and $${GH}\"\n",
        "      DEF: \"fallback\"\n",
        "      GONE: \"\"\n",
        "      FROM_FILE: \"ghp_123-file\"\n",
    ] {
        assert!(compose.contains(line), "{line:?} in:\n{compose}");
    }
    assert!(
        stderr(&o).contains(
            "jailoc: warning: workspaces.app.env.GONE: $NOPE is not set in your environment: it is empty in the container (write $$ for a literal $)\n"
        ),
        "{}",
        stderr(&o)
    );
    // `config` shows what is written, not what it expands to.
    let o = env.run(&["config"]);
    assert!(
        stdout(&o).contains("GITHUB_TOKEN = \"${GH}\"\n"),
        "{}",
        stdout(&o)
    );
    // A required variable, and a lone `$`: errors naming file, line and key.
    let file = env.config_file();
    for (entry, msg) in [
        (
            "NEED=${NOPE:?export NOPE}",
            "failed to expand \"${NOPE:?export NOPE}\": $NOPE is not set in your environment: export NOPE",
        ),
        (
            "PRICE=5$",
            "failed to expand \"5$\": a \"$\" that starts no variable in \"5$\": write $$ for a literal $",
        ),
    ] {
        env.write_config(&format!("{APP}env = [\"{entry}\"]\n"));
        let o = env.run(&["up"]);
        assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
        let key = entry.split('=').next().expect("key");
        assert_eq!(
            stderr(&o),
            format!(
                "jailoc: failed to load config: {}:3: workspaces.app.env.{key}: {msg}\n",
                file.display()
            )
        );
    }
}

#[test]
fn config_shows_secrets_and_env_files_by_reference() {
    let mut env = Env::new();
    std::fs::create_dir_all(env.home.join("s")).expect("mkdir");
    std::fs::write(env.home.join("s/token"), "TOPSECRET-1").expect("write");
    std::fs::write(env.home.join("s/agent.env"), "API_KEY=TOPSECRET-2\n").expect("write");
    env.set("HOST_NPM", "TOPSECRET-3");
    env.write_config(
        "[workspaces.app]\npaths = [\"~/src/app\"]\nenv_file = \"~/s/agent.env\"\nenv = { EDITOR = \"vi\" }\n[workspaces.app.secrets.env.GH_TOKEN]\nfrom_file = \"~/s/token\"\n[workspaces.app.secrets.file.npmrc]\nfrom_env = \"HOST_NPM\"\n",
    );
    let out = stdout(&env.run(&["config"]));
    assert!(!out.contains("TOPSECRET"), "{out}");
    assert!(
        out.contains(&format!(
            "\n[secrets.env]\nGH_TOKEN = \"(from_file {}/s/token)\"\n\n[secrets.file]\nnpmrc = \"(from_env HOST_NPM)\"\n",
            env.home.display()
        )),
        "{out}"
    );
    assert!(out.contains(&format!(
        "API_KEY = \"(from {}/s/agent.env)\"",
        env.home.display()
    )));
    assert!(out.contains("EDITOR = \"vi\""));
    ok(&env.run(&["up"]));
    let secret_env =
        std::fs::read_to_string(env.home.join(".config/jailoc/workspaces/app/secret-env"))
            .expect("secret-env");
    assert_eq!(secret_env, "GH_TOKEN\n", "file secrets are not exported");
}

/// The Go jailoc's four secret combinations: each reaches the container as a read-only copy
/// at /run/secrets/NAME; environment ones are listed in secret-env for sandbox-init. A value never
/// appears in the compose file, on a command line or in the engine's environment.
#[test]
fn secrets_reach_the_container_as_files_never_as_values() {
    let mut env = Env::new();
    let s = env.home.join("s");
    std::fs::create_dir_all(&s).expect("mkdir");
    std::fs::write(s.join("gh"), "VALUE-ENV-FILE\n").expect("write");
    std::fs::write(s.join("ca.pem"), "VALUE-FILE-FILE").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(s.join("gh"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        std::fs::set_permissions(s.join("ca.pem"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    env.set("HOST_TOKEN", "VALUE-ENV-ENV");
    env.set("HOST_NETRC", "VALUE-FILE-ENV");
    env.set("FAKE_ENV_DUMP", "1");
    env.write_config(
        r#"[defaults.secrets.env.API_TOKEN]
from_env = "HOST_TOKEN"
[defaults.secrets.file.ca]
from_file = "~/s/ca.pem"
[workspaces.app]
paths = ["~/src/app"]
[workspaces.app.secrets.env.GH_TOKEN]
from_file = "~/s/gh"
[workspaces.app.secrets.file.netrc]
from_env = "HOST_NETRC"
"#,
    );
    ok(&env.run(&["up"]));
    let policy_dir = env.home.join(".config/jailoc/workspaces/app");
    assert_eq!(
        std::fs::read_to_string(policy_dir.join("secret-env")).expect("secret-env"),
        "API_TOKEN\nGH_TOKEN\n"
    );
    let secrets_dir = env.home.join(".cache/jailoc/app/secrets");
    assert_eq!(mode(&secrets_dir), 0o700);
    assert_eq!(
        std::fs::read_to_string(secrets_dir.join("API_TOKEN")).expect("written"),
        "VALUE-ENV-ENV"
    );
    assert_eq!(mode(&secrets_dir.join("API_TOKEN")), 0o600);
    assert_eq!(
        std::fs::read_to_string(secrets_dir.join("netrc")).expect("written"),
        "VALUE-FILE-ENV"
    );
    assert_eq!(mode(&secrets_dir.join("netrc")), 0o444);
    let names: Vec<String> = std::fs::read_dir(&secrets_dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "every secret is copied: {names:?}");
    assert_eq!(
        std::fs::read_to_string(secrets_dir.join("GH_TOKEN")).expect("copied"),
        "VALUE-ENV-FILE\n"
    );
    assert_eq!(mode(&secrets_dir.join("GH_TOKEN")), 0o600);
    assert_eq!(mode(&secrets_dir.join("ca")), 0o444);

    let compose =
        std::fs::read_to_string(env.home.join(".cache/jailoc/app/docker-compose.yml")).expect("c");
    // Only jailoc's copies are mounted, never the user's files.
    assert!(!compose.contains(&format!("{}/", s.display())), "{compose}");
    for (source, name) in [
        (secrets_dir.join("API_TOKEN"), "API_TOKEN"),
        (secrets_dir.join("ca"), "ca"),
        (secrets_dir.join("GH_TOKEN"), "GH_TOKEN"),
        (secrets_dir.join("netrc"), "netrc"),
    ] {
        let mount = format!(
            "      - type: \"bind\"\n        source: \"{}\"\n        target: \"/run/secrets/{name}\"\n        read_only: true\n",
            source.display()
        );
        assert!(compose.contains(&mount), "{mount}\nnot in:\n{compose}");
    }
    let dump = std::fs::read_to_string(env.fake.join("env.dump")).expect("engine env dumped");
    assert!(dump.contains("FAKE_DIR"), "the dump works: {dump}");
    for leak in [&compose, &env.argv_log(), &dump] {
        for value in [
            "VALUE-ENV-ENV",
            "VALUE-FILE-ENV",
            "VALUE-ENV-FILE",
            "VALUE-FILE-FILE",
        ] {
            assert!(!leak.contains(value), "{value} leaked:\n{leak}");
        }
    }
    assert!(
        !dump.contains("HOST_TOKEN") && !dump.contains("HOST_NETRC"),
        "{dump}"
    );

    // Unchanged: already running. A changed value is written and the container recreated
    // (the compose file is the same, so compose alone would keep the old one).
    let o = env.run(&["up"]);
    ok(&o);
    assert!(stdout(&o).contains("already running"), "{}", stdout(&o));
    env.extra.retain(|(k, _)| k != "HOST_TOKEN");
    env.set("HOST_TOKEN", "VALUE-2");
    let o = env.run(&["up"]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "workspace \"app\" is up on http://127.0.0.1:4096\n"
    );
    assert!(
        env.argv_log()
            .lines()
            .rfind(|l| l.contains(" up -d "))
            .expect("a call")
            .ends_with(" up -d --remove-orphans --force-recreate"),
        "{}",
        env.argv_log()
    );
    assert_eq!(
        std::fs::read_to_string(secrets_dir.join("API_TOKEN")).expect("rewritten"),
        "VALUE-2"
    );
    ok(&env.run(&["down"]));
    assert!(!secrets_dir.exists(), "down removes the secrets' copies");
}

#[test]
fn secret_sources_are_checked_at_up() {
    let mut env = Env::new();
    let s = env.home.join("s");
    std::fs::create_dir_all(&s).expect("mkdir");
    std::fs::write(s.join("private"), "x").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(s.join("private"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    env.set("EMPTY_VAR", "");
    let file = env.config_file();
    let home = env.home.display().to_string();
    let cases = [
        (
            "[workspaces.app.secrets.env.GH]\nfrom_env = \"UNSET_VAR\"\n",
            "4: workspaces.app.secrets.env.GH: from_env \"UNSET_VAR\": the host environment variable UNSET_VAR is not set or empty (export it before `jailoc up`)".to_string(),
        ),
        (
            "[workspaces.app.secrets.file.tok]\nfrom_env = \"EMPTY_VAR\"\n",
            "4: workspaces.app.secrets.file.tok: from_env \"EMPTY_VAR\": the host environment variable EMPTY_VAR is not set or empty (export it before `jailoc up`)".to_string(),
        ),
        (
            "[workspaces.app.secrets.env.GH]\nfrom_file = \"~/s/missing\"\n",
            format!("4: workspaces.app.secrets.env.GH: from_file \"~/s/missing\": failed to read {home}/s/missing: No such file or directory (os error 2)"),
        ),
        (
            "[workspaces.app.secrets.env.GH]\nfrom_file = \"~/s\"\n",
            format!("4: workspaces.app.secrets.env.GH: from_file \"~/s\": {home}/s is not a regular file"),
        ),
    ];
    for (secret, msg) in cases {
        env.write_config(&format!("{APP}\n{secret}"));
        let o = env.run(&["up"]);
        assert_eq!(o.status.code(), Some(78), "{secret}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!(
                "jailoc: failed to prepare workspace \"app\": {}:{msg}\n",
                file.display()
            )
        );
        assert_eq!(env.argv_log(), "", "nothing runs");
        // Other commands still work: sources are checked at `up` only.
        ok(&env.run(&["config"]));
    }
    // A private (0600) source is fine for either destination: jailoc copies the value (0600
    // for sandbox-init to read as root, 0444 for the agent).
    env.write_config(&format!(
        "{APP}\n[workspaces.app.secrets.env.KEY]\nfrom_file = \"~/s/private\"\n[workspaces.app.secrets.file.key]\nfrom_file = \"~/s/private\"\n"
    ));
    ok(&env.run(&["up"]));
    let secrets = env.home.join(".cache/jailoc/app/secrets");
    assert_eq!(mode(&secrets.join("KEY")), 0o600);
    assert_eq!(mode(&secrets.join("key")), 0o444);
}

#[test]
fn help_version_usage_and_completions() {
    let env = Env::new();
    let o = env.run(&["--version"]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        format!("jailoc {}\n", env!("CARGO_PKG_VERSION"))
    );
    let help = stdout(&env.run(&["--help"]));
    for cmd in [
        "up",
        "down",
        "restart",
        "status",
        "logs",
        "config",
        "add",
        "shell",
        "completions",
    ] {
        assert!(
            help.contains(&format!("\n  {cmd} ")),
            "{cmd} missing from:\n{help}"
        );
    }
    // A word that is neither a command nor a directory (bare `jailoc PATH` opens a directory).
    let o = env.run(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "jailoc: \"frobnicate\" is neither a directory nor a command (see `jailoc --help`)\n"
    );
    assert_eq!(env.argv_log(), "");
    let o = env.run(&["completions", "bash"]);
    ok(&o);
    assert!(stdout(&o).contains("_jailoc()"));
    // The Go jailoc's spellings: `completion SHELL`, `-v`, `--no-color`.
    let o = env.run(&["completion", "zsh"]);
    ok(&o);
    assert!(stdout(&o).contains("#compdef jailoc"), "{}", stdout(&o));
    for v in [["-v"], ["-V"]] {
        let o = env.run(&v);
        ok(&o);
        assert_eq!(
            stdout(&o),
            format!("jailoc {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
    ok(&env.run(&["--no-color", "status"]));
    // A sub-command's workspace argument and -w must agree; the attach flags are bare jailoc's.
    let o = env.run(&["-w", "a", "up", "b"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "jailoc: error: the workspace is named twice, \"a\" (-w) and \"b\": give one\n"
    );
    for flags in [["-s", "ses_1"], ["-c", "up"]] {
        let args: Vec<&str> = flags.iter().copied().chain(["down"]).collect();
        let o = env.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    let o = env.run(&["--exec", "--remote"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

#[test]
fn bare_jailoc_starts_and_attaches() {
    let mut env = Env::new();
    env.write_config(APP);
    let app = env.home.join("src/app");
    std::fs::create_dir_all(app.join("sub")).expect("mkdir");
    // No `opencode` on the host: attach inside the container, as the agent, with the terminal's
    // settings, jailoc's sidebar plugin from its read-only mount, and OpenCode opening the
    // directory jailoc was started in (it exists at the same path in the container).
    env.set("TERM", "xterm-kitty");
    let o = env.run(&[]);
    ok(&o);
    let compose = env.home.join(".cache/jailoc/app/docker-compose.yml");
    let exec = format!(
        "docker compose -p jailoc-app -f {} exec --user 0:0 -T -e TERM=xterm-kitty -e COLORTERM=truecolor -e LANG=C.UTF-8 -e OPENCODE_TUI_CONFIG=/usr/local/share/jailoc-tui/container.json -e JAILOC_EGRESS=open opencode /usr/local/bin/sandbox-init --config-dir /etc/jailoc --enter -- opencode attach http://127.0.0.1:4096",
        compose.display()
    );
    let log = env.argv_log();
    assert!(log.contains(" up -d "), "{log}");
    assert_eq!(
        log.lines().last().expect("a call"),
        format!("{exec} --dir {}", app.display())
    );
    // `jailoc PATH` (the Go jailoc's form) opens PATH; -s / -c continue a session.
    let o = env.run(&["sub", "-s", "ses_abc"]);
    ok(&o);
    assert_eq!(
        env.argv_log().lines().last().expect("a call"),
        format!("{exec} --dir {}/sub --session ses_abc", app.display())
    );
    let o = env.run(&["-c", "~/src/app/sub"]);
    ok(&o);
    assert_eq!(
        env.argv_log().lines().last().expect("a call"),
        format!("{exec} --dir {}/sub --continue", app.display())
    );
    // A directory outside the workspace is not handed to OpenCode (it does not exist there).
    let o = env.run(&["-w", "app", &env.root.to_string_lossy()]);
    ok(&o);
    assert_eq!(env.argv_log().lines().last().expect("a call"), exec);
    // With `opencode` on the host: attach to the published port, password in its environment.
    write_exec(&env.bin.join("opencode"), FAKE_ENGINE);
    let o = env.run(&[]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "workspace \"app\" is already running on http://127.0.0.1:4096\n"
    );
    let log = env.argv_log();
    let last = log.lines().last().expect("a call");
    assert!(
        last.starts_with("opencode attach http://127.0.0.1:4096 --dir "),
        "{last}"
    );
    assert!(last.ends_with(&format!("/..{}", app.display())), "{last}");
    let pw = std::fs::read_to_string(env.home.join(".config/jailoc/passwords/app.env"))
        .expect("password")
        .trim()
        .trim_start_matches("OPENCODE_SERVER_PASSWORD=")
        .to_string();
    let env_log = std::fs::read_to_string(env.fake.join("env.log")).expect("env log");
    assert_eq!(
        env_log,
        format!("{pw}\n"),
        "only the host opencode got the password"
    );
    assert!(!log.contains(&pw));
    // --exec wins over the host client.
    ok(&env.run(&["--exec"]));
    assert_eq!(
        env.argv_log().lines().last().expect("a call"),
        format!("{exec} --dir {}", app.display())
    );
}

/// `up` says "is up" only when the engine reports the server healthy. A container that
/// restarts in a loop (sandbox-init exiting 78 on a bad policy) fails `up` with the exit code's
/// meaning and the container's last log lines, and the attach never starts.
#[test]
fn up_fails_with_the_reason_when_the_container_restarts() {
    let mut env = Env::new();
    env.write_config(APP);
    env.set("FAKE_UP_STATE", "restarting");
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "never says it is up");
    assert_eq!(
        stderr(&o),
        "jailoc: failed to start workspace \"app\": its container keeps restarting; it last exited with code 78: sandbox-init refused the policy in /etc/jailoc (the log names the file, line and entry); its last log lines:\n  | sandbox-init: error: fake log line\n"
    );
    assert!(
        env.argv_log()
            .contains(" logs --no-color --tail 20 opencode\n"),
        "{}",
        env.argv_log()
    );
    let o = env.run(&[]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        !env.argv_log().contains(" attach "),
        "no attach to a dead container"
    );
}

#[test]
fn up_refuses_a_missing_project_directory() {
    let env = Env::new();
    env.write_config("[workspaces.app]\npaths = [\"~/src/gone\"]\n");
    let o = env.run(&["up", "-w", "app"]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: failed to prepare workspace \"app\": path {}/src/gone does not exist or is not a directory\n",
            env.home.display()
        )
    );
    assert_eq!(env.argv_log(), "");
}

#[test]
fn explicit_config_must_exist_and_is_never_created() {
    let env = Env::new();
    let missing = env.root.join("nope.toml");
    let o = env.run(&["--config", &missing.to_string_lossy(), "status"]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: failed to load config: {}: failed to read the file: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    assert!(!missing.exists());
}

/// The attach ends, with a message and exit 4, when the container stops underneath it (Go's
/// watchdog): a host attach that keeps running is stopped by the watchdog (the stand-in
/// `opencode` would sleep for ten minutes); an exec session that ends with its container says so
/// instead of passing the bare exit code through.
#[test]
fn attach_ends_when_its_container_stops_underneath() {
    let mut env = Env::new();
    env.write_config(APP);
    // exec: the session dies with the container.
    env.set("FAKE_EXEC_STOPS", "1");
    let o = run_bounded(&env, &["--exec"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "jailoc: attach to workspace \"app\" ended: its container stopped (see `jailoc status app` and `jailoc logs app`)\n"
    );
    env.extra.retain(|(k, _)| k != "FAKE_EXEC_STOPS");
    // remote: the host's client would go on; the watchdog ends it.
    write_exec(
        &env.bin.join("opencode"),
        &format!(
            "#!/bin/sh\n/bin/rm -f {}/state-app\nexec /bin/sleep 600\n",
            env.fake.display()
        ),
    );
    let o = run_bounded(&env, &["--remote"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "jailoc: attach to workspace \"app\" ended: its container stopped (see `jailoc status app` and `jailoc logs app`)\n"
    );
}

/// `password_mode = "keyring"` (the Go jailoc's OS keyring) never blocks a command: `status`,
/// `config` and `down` work; `up` warns once and stores the password like `file`.
#[test]
fn password_mode_keyring_falls_back_to_the_file() {
    let env = Env::new();
    env.write_config(&format!("password_mode = \"keyring\"\n{APP}"));
    for args in [["status"], ["config"], ["down"]] {
        let o = env.run(&args);
        ok(&o);
        assert!(!stderr(&o).contains("keyring"), "{args:?}: {}", stderr(&o));
    }
    let o = env.run(&["up"]);
    ok(&o);
    let pw = pw_file_of(&env);
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: warning: password_mode = \"keyring\": this jailoc has no OS keyring; the server password is stored like password_mode = \"file\", in {} (0600)\n",
            pw.display()
        )
    );
    assert_eq!(mode(&pw), 0o600);
    let o = env.run(&["status", "app"]);
    assert!(
        stdout(&o).contains(&format!(
            "Password:  file ({}); no OS keyring here\n",
            pw.display()
        )),
        "{}",
        stdout(&o)
    );
}

#[test]
fn password_mode_env_auto_and_file() {
    // env: the variable is required, copied into the 0600 env file, never in argv or the
    // engine's environment; a new value recreates the container.
    let mut env = Env::new();
    env.write_config(&format!("password_mode = \"env\"\n{APP}"));
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: failed to prepare workspace \"app\": {}: password_mode: \"env\" needs OPENCODE_SERVER_PASSWORD set in the environment (export it, or use password_mode = \"auto\" or \"file\")\n",
            env.config_file().display()
        )
    );
    assert_eq!(env.argv_log(), "");
    env.set("OPENCODE_SERVER_PASSWORD", "pw-from-env-1");
    ok(&env.run(&["up"]));
    let pw_file = env.home.join(".config/jailoc/passwords/app.env");
    assert_eq!(
        std::fs::read_to_string(&pw_file).expect("pw"),
        "OPENCODE_SERVER_PASSWORD=pw-from-env-1\n"
    );
    assert_eq!(mode(&pw_file), 0o600);
    assert!(
        !env.fake.join("env.log").exists(),
        "the engine never inherits the password"
    );
    assert!(!env.argv_log().contains("pw-from-env"));
    env.extra.clear();
    env.set("OPENCODE_SERVER_PASSWORD", "pw-from-env-2");
    let o = env.run(&["up"]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "workspace \"app\" is up on http://127.0.0.1:4096\n"
    );

    // file: the variable is ignored; auto: the variable if set, else the stored file.
    let mut env = Env::new();
    env.set("OPENCODE_SERVER_PASSWORD", "pw-from-env");
    env.write_config(&format!("password_mode = \"file\"\n{APP}"));
    ok(&env.run(&["up"]));
    let text = std::fs::read_to_string(pw_file_of(&env)).expect("pw");
    assert!(!text.contains("pw-from-env"), "{text}");
    assert_eq!(text.trim().len(), "OPENCODE_SERVER_PASSWORD=".len() + 64);
    env.write_config(APP);
    ok(&env.run(&["up"]));
    assert_eq!(
        std::fs::read_to_string(pw_file_of(&env)).expect("pw"),
        "OPENCODE_SERVER_PASSWORD=pw-from-env\n"
    );
    assert!(stdout(&env.run(&["config"])).contains("password_mode = \"auto\"\n"));
}

fn pw_file_of(env: &Env) -> PathBuf {
    env.home.join(".config/jailoc/passwords/app.env")
}

#[test]
fn mode_decides_how_bare_jailoc_attaches() {
    let env = Env::new();
    let compose = env.home.join(".cache/jailoc/app/docker-compose.yml");
    let app = env.home.join("src/app");
    let exec_line = format!(
        "docker compose -p jailoc-app -f {} exec --user 0:0 -T -e COLORTERM=truecolor -e LANG=C.UTF-8 -e OPENCODE_TUI_CONFIG=/usr/local/share/jailoc-tui/container.json -e JAILOC_EGRESS=open opencode /usr/local/bin/sandbox-init --config-dir /etc/jailoc --enter -- opencode attach http://127.0.0.1:4096 --dir {}",
        compose.display(),
        app.display()
    );
    // Top-level remote without a host client: refused before anything runs (as in Go).
    env.write_config(&format!("mode = \"remote\"\n{APP}"));
    let o = env.run(&[]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        stderr(&o),
        "jailoc: failed to prepare workspace \"app\": mode = \"remote\" needs opencode (or opencode-cli) on the host's PATH: install it, or set mode = \"exec\" to attach inside the container\n"
    );
    assert_eq!(env.argv_log(), "");
    // A workspace's own `mode = "remote"` (a key the Go jailoc ignores) never turns a working
    // setup into an error: without a host client it attaches inside, with a warning.
    env.write_config(&format!("{APP}mode = \"remote\"\n"));
    let o = env.run(&[]);
    ok(&o);
    assert!(
        stderr(&o).contains("jailoc: warning: attaching inside the container: mode = \"remote\" needs opencode (or opencode-cli) on the host's PATH\n"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.argv_log().lines().last().expect("a call"), exec_line);
    // remote finds opencode-cli too (as the Go jailoc does).
    env.write_config(&format!("mode = \"remote\"\n{APP}"));
    write_exec(&env.bin.join("opencode-cli"), FAKE_ENGINE);
    ok(&env.run(&[]));
    assert!(
        env.argv_log()
            .lines()
            .last()
            .expect("a call")
            .starts_with("opencode-cli attach http://127.0.0.1:4096 --dir "),
        "{}",
        env.argv_log()
    );
    // exec (the workspace's own mode wins over the top-level one) even with a host client.
    env.write_config(&format!("mode = \"remote\"\n{APP}mode = \"exec\"\n"));
    ok(&env.run(&[]));
    assert_eq!(env.argv_log().lines().last().expect("a call"), exec_line);
    // remote with an unpublished port falls back to exec (the Go jailoc does the same), unless
    // --remote asks for it explicitly.
    env.write_config(&format!("mode = \"remote\"\n{APP}expose_port = false\n"));
    let o = env.run(&[]);
    ok(&o);
    assert!(
        stderr(&o).contains("warning: attaching inside the container: mode = \"remote\" attaches to the published port, but expose_port = false"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["--remote"]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        stderr(&o),
        "jailoc: failed to prepare workspace \"app\": --remote attaches to the published port, but expose_port = false: attach with --exec or expose the port\n"
    );
}

const FAKE_CURL: &str = r#"#!/bin/sh
# Fake curl: logs its argv, writes $FAKE_CURL_BODY (or a Dockerfile naming the URL) to -o.
{
  printf 'curl'
  for a in "$@"; do printf ' %s' "$a"; done
  printf '\n'
} >> "$FAKE_DIR/argv.log"
out=""; url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    -*) shift ;;
    *) url="$1"; shift ;;
  esac
done
if [ -n "$FAKE_CURL_CODE" ]; then echo "curl: (22) The requested URL returned error: 404" >&2; exit "$FAKE_CURL_CODE"; fi
if [ -n "$FAKE_CURL_BIG" ]; then /usr/bin/head -c 1048577 /dev/zero > "$out"; exit 0; fi
printf '%s\n' "${FAKE_CURL_BODY:-FROM scratch # $url}" > "$out"
"#;

#[test]
fn dockerfile_urls_are_fetched_with_curl() {
    let mut env = Env::new();
    write_exec(&env.bin.join("curl"), FAKE_CURL);
    env.set("FAKE_IMAGE_MISSING", "1");
    env.write_config(&format!(
        "[base]\ndockerfile = \"https://example.com/base\"\n{APP}dockerfile = \"https://example.com/app\"\n"
    ));
    ok(&env.run(&["up"]));
    let log = env.argv_log();
    let cache = env.home.join(".cache/jailoc/dockerfiles");
    let fetched: Vec<PathBuf> = std::fs::read_dir(&cache)
        .expect("fetched")
        .map(|e| e.expect("entry").path().join("Dockerfile"))
        .collect();
    assert_eq!(fetched.len(), 2, "{log}");
    let base = fetched
        .iter()
        .find(|p| std::fs::read_to_string(p).expect("read").contains("/base"))
        .expect("base fetched");
    let app = fetched.iter().find(|p| *p != base).expect("app fetched");
    for (file, url) in [
        (base, "https://example.com/base"),
        (app, "https://example.com/app"),
    ] {
        let curl = format!(
            "curl -fsSL --max-filesize 1048576 -o {} {url}\n",
            file.with_extension("part").display()
        );
        assert!(log.contains(&curl), "{curl} not in:\n{log}");
    }
    // Each is built from its own directory (nothing else in the context).
    assert!(
        log.contains(&format!(
            " -f {} {}\n",
            base.display(),
            base.parent().expect("dir").display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            " -f {} --build-arg BASE=jailoc-base:",
            app.display()
        )),
        "the Go jailoc's overlays say ARG BASE / FROM ${{BASE}}: {log}"
    );
    assert!(
        log.contains(" --build-arg BASE_IMAGE=jailoc-base:"),
        "{log}"
    );

    // A failed download stops `up` before anything is built or started.
    let mut env = Env::new();
    write_exec(&env.bin.join("curl"), FAKE_CURL);
    env.set("FAKE_CURL_CODE", "22");
    env.write_config(&format!(
        "[base]\ndockerfile = \"https://example.com/gone\"\n{APP}"
    ));
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("jailoc: failed to download the Dockerfile https://example.com/gone: `curl -fsSL --max-filesize 1048576 -o "), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .ends_with("` exited with code 22: curl: (22) The requested URL returned error: 404\n"),
        "{}",
        stderr(&o)
    );
    assert!(!env.argv_log().contains(" build "));
    assert!(!env.argv_log().contains(" up -d "));

    // More than 1 MiB (a server that ignores --max-filesize) is refused too.
    env.extra.clear();
    env.set("FAKE_CURL_BIG", "1");
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "jailoc: failed to download the Dockerfile https://example.com/gone: it is larger than 1 MiB (1048577 bytes)\n"
    );
    assert!(!env.argv_log().contains(" up -d "));

    // No curl at all: say what to do.
    std::fs::remove_file(env.bin.join("curl")).expect("rm");
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("could not run curl (No such file or directory (os error 2)); install curl, or download the file yourself and set dockerfile to its path"),
        "{}",
        stderr(&o)
    );
}

/// OpenCode's host config is read-only by default (Go: read-write); the Go template's explicit
/// read-write mount is honoured, with a warning saying what it allows.
#[test]
fn opencode_config_is_read_only_unless_asked_and_then_warned() {
    let env = Env::new();
    std::fs::create_dir_all(env.home.join(".config/opencode")).expect("mkdir");
    std::fs::create_dir_all(env.home.join(".opencode/bin")).expect("mkdir");
    env.write_config(APP);
    let o = env.run(&["up"]);
    ok(&o);
    assert_eq!(stderr(&o), "");
    let compose_file = env.home.join(".cache/jailoc/app/docker-compose.yml");
    let compose = std::fs::read_to_string(&compose_file).expect("compose");
    for dir in [".config/opencode", ".opencode"] {
        let mount = format!(
            "        source: \"{}/{dir}\"\n        target: \"/home/agent/{dir}\"\n        read_only: true\n",
            env.home.display()
        );
        assert!(compose.contains(&mount), "{mount}\n{compose}");
    }
    env.write_config(&format!(
        "[defaults]\nmounts = [\"~/.config/opencode:/home/agent/.config/opencode:rw\"]\n{APP}"
    ));
    let o = env.run(&["up"]);
    ok(&o);
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: warning: {h}/.config/opencode is mounted read-write at /home/agent/.config/opencode: the agent can change what your host's OpenCode loads from {h}/.config/opencode (add :ro to the mount to prevent it)\n",
            h = env.home.display()
        )
    );
    let compose = std::fs::read_to_string(&compose_file).expect("compose");
    assert!(compose
        .contains("        target: \"/home/agent/.config/opencode\"\n        read_only: false\n"));
}

/// A host `opencode` that records the directory it runs in, its arguments and the variables
/// jailoc sets for it.
const FAKE_OPENCODE: &str = r#"#!/bin/sh
d="$FAKE_DIR"
pwd -P > "$d/opencode.cwd"
printf '%s\n' "$@" > "$d/opencode.args"
printf '%s\n' "${OPENCODE_DISABLE_PROJECT_CONFIG-unset}" > "$d/opencode.disable"
printf '%s\n' "${OPENCODE_TUI_CONFIG-unset}" > "$d/opencode.tui"
# What OpenCode 1.18.33's attach does with --dir: chdir(2) there when it can (-P: the path as
# given, `..` after what precedes it, like the system call, not the shell's lexical cd).
while [ $# -gt 0 ]; do
  if [ "$1" = --dir ]; then
    if cd -P "$2" 2>/dev/null; then pwd -P > "$d/opencode.chdir"; fi
  fi
  shift
done
"#;

/// The host's OpenCode loads `tui.json` plugins from its own config directory whatever its
/// working directory. Kept in a dotfiles repo that is a workspace (`~/.config/opencode` a
/// symlink into it, as stow makes it), that directory is the agent's: it plants a plugin, and
/// a host attach would run it as the user. Bare `jailoc` then attaches inside the container
/// (with a warning); `mode = "remote"` refuses.
#[test]
fn attack_tui_plugin_planted_in_the_hosts_opencode_config_is_not_loaded_by_a_host_attach() {
    let mut env = Env::new();
    let dotfiles = env.home.join("dotfiles");
    std::fs::create_dir_all(dotfiles.join("opencode")).expect("mkdir");
    std::fs::create_dir_all(env.home.join(".config")).expect("mkdir");
    std::os::unix::fs::symlink(dotfiles.join("opencode"), env.home.join(".config/opencode"))
        .expect("symlink");
    // What the agent writes there.
    std::fs::write(
        dotfiles.join("opencode/tui.json"),
        "{\"plugin\":[\"./evil.js\"]}",
    )
    .expect("plant");
    let config = "[workspaces.dots]\npaths = [\"~/dotfiles\"]\n";
    env.write_config(config);
    env.cwd = dotfiles.clone();
    write_exec(&env.bin.join("opencode"), FAKE_OPENCODE);
    let o = env.run(&[]);
    ok(&o);
    assert!(
        !env.fake.join("opencode.args").exists(),
        "the host's OpenCode started with the agent's tui.json"
    );
    let h = env.home.display();
    assert!(
        stderr(&o).contains(&format!(
            "jailoc: warning: attaching inside the container, not with your host's OpenCode: it loads plugins from {h}/.config/opencode (OpenCode's config directory), which resolves to {h}/dotfiles/opencode, inside {h}/dotfiles, which a container can write (workspaces.dots.paths, line 2), where the agent could plant one\n"
        )),
        "{}",
        stderr(&o)
    );
    assert!(
        env.argv_log()
            .lines()
            .last()
            .is_some_and(|l| l.contains("--enter -- opencode attach http://127.0.0.1:4096")),
        "{}",
        env.argv_log()
    );
    // Asked for explicitly (the top-level mode, --remote): refused.
    for (config, args) in [
        (format!("mode = \"remote\"\n{config}"), vec![]),
        (config.to_string(), vec!["--remote"]),
    ] {
        env.write_config(&config);
        let o = env.run(&args);
        assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("would start your OpenCode on the host"),
            "{}",
            stderr(&o)
        );
    }
    // A workspace's own mode (which the Go jailoc ignores): inside the container, warned.
    env.write_config(&format!("{config}mode = \"remote\"\n"));
    let o = env.run(&[]);
    ok(&o);
    assert!(
        stderr(&o).contains(
            "jailoc: warning: attaching inside the container, not with your host's OpenCode"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!env.fake.join("opencode.args").exists());
}

/// Issue 10, item 2: the agent plants `tui.json` and `.opencode/tui.json` (with a plugin) in the
/// project; the host's `opencode attach` loads TUI plugins from its directory upward. It must
/// run in jailoc's private empty directory — not the project, nor anything under or above it
/// that holds those files — with project configuration disabled, and no argument may point
/// it back into the project (OpenCode's `attach --dir` does chdir on the host). Every engine
/// process runs there too.
#[test]
fn attack_tui_plugin_planted_in_the_project_is_not_loaded_by_the_host_attach() {
    let mut env = Env::new();
    env.write_config(APP);
    let project = env.home.join("src/app");
    std::fs::create_dir_all(project.join(".opencode")).expect("mkdir");
    for f in ["tui.json", ".opencode/tui.json"] {
        std::fs::write(project.join(f), "{\"plugin\":[\"./evil.js\"]}").expect("plant");
    }
    std::fs::write(project.join("evil.js"), "process.exit(66)").expect("plant");
    std::fs::create_dir_all(project.join("sub")).expect("mkdir");
    env.cwd = project.join("sub");
    let runtime = env.root.join("run");
    std::fs::create_dir_all(&runtime).expect("mkdir");
    env.set("XDG_RUNTIME_DIR", &runtime.to_string_lossy());
    write_exec(&env.bin.join("opencode"), FAKE_OPENCODE);
    ok(&env.run(&[]));

    let private = runtime.join("jailoc/.empty-cwd");
    let cwd = PathBuf::from(
        std::fs::read_to_string(env.fake.join("opencode.cwd"))
            .expect("opencode ran")
            .trim(),
    );
    assert_eq!(cwd, private);
    assert_eq!(mode(&private), 0o700);
    assert_eq!(
        std::fs::read_dir(&private).expect("dir").count(),
        0,
        "empty"
    );
    assert!(!cwd.starts_with(&project) && !project.starts_with(&cwd));
    for dir in cwd.ancestors() {
        for f in ["tui.json", ".opencode", "opencode.json"] {
            assert!(!dir.join(f).exists(), "{} exists", dir.join(f).display());
        }
    }
    // OpenCode opens the directory jailoc ran in, but its `--dir` is a path that does not exist
    // on the host (OpenCode's attach does chdir on the host when it can, and the project's
    // tui.json would load again): the chdir fails, the server normalises it to the project.
    let args = std::fs::read_to_string(env.fake.join("opencode.args")).expect("args");
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(args[..3], ["attach", "http://127.0.0.1:4096", "--dir"]);
    assert_eq!(args.len(), 4, "{args:?}");
    assert!(
        !env.fake.join("opencode.chdir").exists(),
        "the host's OpenCode changed into {}",
        std::fs::read_to_string(env.fake.join("opencode.chdir")).unwrap_or_default()
    );
    assert_eq!(normalize(Path::new(args[3])), project.join("sub"));
    // jailoc's own sidebar plugin, from jailoc's data directory.
    let tui = std::fs::read_to_string(env.fake.join("opencode.tui")).expect("tui");
    let tui = PathBuf::from(tui.trim());
    assert_eq!(tui, env.home.join(".local/share/jailoc/.tui/host.json"));
    assert!(std::fs::read_to_string(&tui)
        .expect("plugin config")
        .contains(&format!(
            "file://{}",
            env.home.join(".local/share/jailoc/.tui/plugin").display()
        )));
    assert_eq!(
        std::fs::read_to_string(env.fake.join("opencode.disable")).expect("env"),
        "1\n"
    );
    let engine_cwds = std::fs::read_to_string(env.fake.join("cwd.log")).expect("cwd log");
    assert!(!engine_cwds.is_empty());
    for line in engine_cwds.lines() {
        assert_eq!(Path::new(line), private, "an engine process ran elsewhere");
    }

    // Without XDG_RUNTIME_DIR: jailoc's cache dir.
    env.extra.retain(|(k, _)| k != "XDG_RUNTIME_DIR");
    ok(&env.run(&[]));
    assert_eq!(
        std::fs::read_to_string(env.fake.join("opencode.cwd"))
            .expect("ran")
            .trim(),
        env.home.join(".cache/jailoc/.empty-cwd").to_string_lossy()
    );
}

/// Issue 10, item 6: secret sources are re-read at every `up`. A symlink at the source (say,
/// planted by an agent of an older jailoc, which mounted the user's file) is refused and its
/// target never copied; a source inside a workspace path, or reached through a symlinked
/// directory into one, and a denied path are refused at load. Errors name file, line, key.
#[test]
fn attack_symlinked_secret_source_is_refused_and_its_target_never_copied() {
    let env = Env::new();
    let home = env.home.display().to_string();
    let file = env.config_file();
    std::fs::create_dir_all(env.home.join(".ssh")).expect("mkdir");
    std::fs::write(env.home.join(".ssh/id_ed25519"), "PRIVATE-KEY").expect("write");
    std::fs::create_dir_all(env.home.join("s")).expect("mkdir");
    std::os::unix::fs::symlink(env.home.join(".ssh/id_ed25519"), env.home.join("s/gh"))
        .expect("symlink");
    env.write_config(&format!(
        "{APP}[workspaces.app.secrets.env.GH]\nfrom_file = \"~/s/gh\"\n"
    ));
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: failed to prepare workspace \"app\": {}:3: workspaces.app.secrets.env.GH: from_file \"~/s/gh\": {home}/s/gh is a symbolic link: jailoc does not follow a symlink to a secret (it could point anywhere, ~/.ssh included); name the file itself\n",
            file.display()
        )
    );
    let secrets = env.home.join(".cache/jailoc/app/secrets");
    for e in std::fs::read_dir(&secrets).into_iter().flatten() {
        let p = e.expect("entry").path();
        assert_ne!(
            std::fs::read(&p).expect("read"),
            b"PRIVATE-KEY",
            "{}",
            p.display()
        );
    }
    assert!(!env.argv_log().contains(" up -d "), "nothing started");

    // Inside a workspace path (where the agent can swap it), directly or through a symlinked
    // directory: refused at load.
    std::os::unix::fs::symlink(env.home.join("src/app"), env.home.join("s/proj")).expect("symlink");
    for raw in ["~/src/app/token", "~/s/proj/token"] {
        env.write_config(&format!(
            "{APP}[workspaces.app.secrets.env.GH]\nfrom_file = \"{raw}\"\n"
        ));
        let o = env.run(&["up"]);
        assert_eq!(o.status.code(), Some(78));
        assert_eq!(
            stderr(&o),
            format!(
                "jailoc: failed to load config: {}:4: workspaces.app.secrets.env.GH.from_file: from_file \"{raw}\" (resolves to {home}/src/app/token) is inside {home}/src/app, which a container can write (workspaces.app.paths, line 2): the agent could choose what the next `up` hands over as this secret (a symlink to ~/.ssh/id_ed25519, say); keep secret files outside every workspace path and read-write mount\n",
                file.display()
            )
        );
    }
    // A denied path: the deny-list applies to secret sources too.
    env.write_config(&format!(
        "{APP}[workspaces.app.secrets.file.key]\nfrom_file = \"~/.ssh/id_ed25519\"\n"
    ));
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: failed to load config: {}:4: workspaces.app.secrets.file.key.from_file: path \"~/.ssh/id_ed25519\" (resolves to {home}/.ssh/id_ed25519) would expose ~/.ssh to the agent\n",
            file.display()
        )
    );
}

/// The same pattern for programs: a directory inside a workspace path on the user's `PATH`
/// (an activated `.venv/bin`, a direnv `bin/`) lets the agent plant `docker`, `opencode` or
/// `sandbox-init`, which the host would run (or start as every container's PID 1). jailoc
/// refuses a program found there, before running anything.
#[test]
fn attack_program_planted_in_a_project_dir_on_path_is_not_run() {
    let mut env = Env::new();
    env.write_config(APP);
    let project = env.home.join("src/app");
    let venv = project.join(".venv/bin");
    std::fs::create_dir_all(&venv).expect("mkdir");
    let planted = format!("#!/bin/sh\n: > {}/PWNED\nexit 0\n", env.fake.display());
    for p in ["docker", "opencode"] {
        write_exec(&venv.join(p), &planted);
    }
    let path = format!("{}:{}", venv.display(), env.bin.display());
    env.set("PATH", &path);
    let file_line = "which a container can write (workspaces.app.paths, line 2), so the agent could replace it; take that directory off PATH (or install the program elsewhere)";

    // The engine: found first on PATH, in the project.
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: failed to run `docker compose version`: refusing to run {}/docker: it is inside {}, {file_line}\n",
            venv.display(),
            project.display()
        )
    );
    // The host's OpenCode client.
    std::fs::remove_file(venv.join("docker")).expect("rm");
    let o = env.run(&[]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: failed to prepare workspace \"app\": refusing to run {}/opencode: it is inside {}, {file_line}\n",
            venv.display(),
            project.display()
        )
    );
    // sandbox-init, which every container starts as root.
    std::fs::remove_file(venv.join("opencode")).expect("rm");
    let si = project.join("target/sandbox-init");
    std::fs::create_dir_all(si.parent().expect("parent")).expect("mkdir");
    write_exec(&si, "#!/bin/sh\n");
    env.set("JAILOC_SANDBOX_INIT", &si.to_string_lossy());
    let o = env.run(&["up"]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "jailoc: failed to prepare workspace \"app\": refusing to run {}: it is inside {}, {file_line}\n",
            si.display(),
            project.display()
        )
    );
    assert!(!env.fake.join("PWNED").exists(), "a planted program ran");
    assert!(!env.argv_log().contains(" up -d "), "{}", env.argv_log());
}

/// The programs jailoc starts run helpers of their own by name, on the `PATH` they inherit:
/// docker its credential helper (`docker-credential-desktop`, ...), the host's OpenCode TUI
/// `wl-copy`/`xclip`/`osascript` when text is copied. With a project's `.venv/bin` on the
/// user's `PATH`, the agent plants the helper there (not `docker` itself, which jailoc checks)
/// and the host runs it at the next `up` or copy. So no child gets a `PATH` entry a container
/// can write, nor a relative one.
#[test]
fn attack_helper_planted_in_a_project_dir_on_path_is_not_run_by_host_programs() {
    let mut env = Env::new();
    env.write_config(APP);
    let project = env.home.join("src/app");
    let venv = project.join(".venv/bin");
    std::fs::create_dir_all(&venv).expect("mkdir");
    write_exec(
        &venv.join("docker-credential-desktop"),
        &format!("#!/bin/sh\n: > {}/PWNED\n", env.fake.display()),
    );
    // Also through a symlink to the project, and relative.
    std::os::unix::fs::symlink(&project, env.home.join("proj-link")).expect("symlink");
    let path = format!(
        "{}:{}/proj-link/.venv/bin:.venv/bin:{}",
        venv.display(),
        env.home.display(),
        env.bin.display()
    );
    env.set("PATH", &path);
    env.set("FAKE_CRED_HELPER", "docker-credential-desktop");
    env.set("FAKE_ENV_DUMP", "1");
    ok(&env.run(&["up"]));
    assert!(
        env.argv_log().contains(" up -d "),
        "the engine ran: {}",
        env.argv_log()
    );
    assert!(
        !env.fake.join("PWNED").exists(),
        "the host ran the agent's docker-credential-desktop"
    );
    let dump = std::fs::read_to_string(env.fake.join("env.dump")).expect("env dump");
    assert!(
        dump.contains(&format!("PATH='{}'", env.bin.display()))
            || dump.contains(&format!("PATH=\"{}\"", env.bin.display())),
        "the engine's PATH: {dump}"
    );
}
