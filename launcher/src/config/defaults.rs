//! The commented config written on first use.

/// Written to `config.toml` when it does not exist yet. Everything is commented out, so the
/// built-in defaults apply until the user changes something.
pub const DEFAULT_CONFIG: &str = r#"# jailoc configuration. Every key is optional; the values shown are the defaults.
# Full reference: docs/launcher.md. Check it with `jailoc config`.

# mode = ""                # how bare `jailoc` attaches: "remote" (opencode on the host),
#                          # "exec" (inside the container) or "" (remote if opencode is installed)
# password_mode = "auto"   # server password: "auto" ($OPENCODE_SERVER_PASSWORD if set, else
#                          # the stored file), "env" (only the variable) or "file"

# [base]
# dockerfile = "~/jailoc/base.Dockerfile"  # replaces the built-in OpenCode image

[defaults]
# egress = "open"          # "open": public internet allowed, private/internal ranges blocked
#                          # "allowlist": only allowed_hosts / allowed_networks (and DNS)
# allowed_hosts = ["registry.npmjs.org", "host.docker.internal:11434"]
# allowed_networks = ["10.20.0.0/16:5432"]
# mounts = ["~/.gitignore_global:/home/agent/.gitignore_global:ro"]
# env = ["EDITOR=vi"]     # or a table: env = { EDITOR = "vi" }
# env_file = ["~/jailoc/agent.env"]
# image = "ghcr.io/you/agent:latest"  # a ready-made image instead of building one
# git_config = true        # mount ~/.gitconfig read-only
# ssh_auth_sock = false    # forward $SSH_AUTH_SOCK
# expose_port = true       # publish OpenCode's server on 127.0.0.1:4096+N
# enable_docker = false    # a private Docker daemon for the agent (see the docs first)
# cpu = 2.0
# memory = "4g"

# Secrets: [defaults.secrets.env.NAME] gives the agent $NAME; [defaults.secrets.file.NAME]
# only the file /run/secrets/NAME. Each takes exactly one source. The same under a workspace
# ([workspaces.NAME.secrets.env.X]) replaces a default secret of the same name.
# [defaults.secrets.env.MY_TOKEN]
#   from_env = "HOST_ENV_VAR"
# [defaults.secrets.file.MY_FILE]
#   from_file = "/path/to/secret"   # must be world-readable (o+r) for a file secret

# One table per workspace (a set of project directories). `jailoc add` appends here.
# [workspaces.myproject]
# paths = ["~/src/myproject"]
"#;

#[cfg(test)]
mod tests {
    use super::DEFAULT_CONFIG;
    use crate::config::parse_str;
    use std::path::Path;

    /// The file as written parses, and so does every example in it once uncommented: the
    /// commented defaults document keys that really exist.
    #[test]
    fn default_config_and_its_examples_parse() {
        let home = Path::new("/nonexistent-home/u");
        let file = Path::new("/cfg/config.toml");
        parse_str(DEFAULT_CONFIG, file, home).expect("as written");
        let uncommented: String = DEFAULT_CONFIG
            .lines()
            .map(|l| {
                let rest = l.strip_prefix('#').map(str::trim_start);
                match rest {
                    Some(r)
                        if r.starts_with('[')
                            || r.split_once(" = ").is_some_and(|(k, _)| {
                                k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                            }) =>
                    {
                        r.to_string()
                    }
                    _ => l.to_string(),
                }
            })
            .map(|l| l + "\n")
            .collect();
        assert!(uncommented.contains("\nfrom_env = \"HOST_ENV_VAR\""));
        assert!(uncommented.contains("\npassword_mode = \"auto\""));
        let cfg =
            parse_str(&uncommented, file, home).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(cfg.defaults.secrets.as_ref().map(Vec::len), Some(2));
        assert!(cfg.workspaces.contains_key("myproject"));
    }
}
