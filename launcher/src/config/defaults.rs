//! The commented config written on first use.

/// Written to `config.toml` when it does not exist yet. Everything is commented out, so the
/// built-in defaults apply until the user changes something.
pub const DEFAULT_CONFIG: &str = r#"# jailoc configuration. Every key is optional; the values shown are the defaults.
# Full reference: docs/launcher.md. Check it with `jailoc config`.

# [base]
# dockerfile = "~/jailoc/base.Dockerfile"  # replaces the built-in OpenCode image

[defaults]
# egress = "open"          # "open": public internet allowed, private/internal ranges blocked
#                          # "allowlist": only allowed_hosts / allowed_networks (and DNS)
# allowed_hosts = ["registry.npmjs.org", "host.docker.internal:11434"]
# allowed_networks = ["10.20.0.0/16:5432"]
# mounts = ["~/.gitignore_global:/home/agent/.gitignore_global:ro"]
# env = { EDITOR = "vi" }
# env_file = ["~/jailoc/agent.env"]
# secrets = { GITHUB_TOKEN = "~/jailoc/github-token" }  # file -> $GITHUB_TOKEN for the agent
# image = "ghcr.io/you/agent:latest"  # a ready-made image instead of building one
# git_config = true        # mount ~/.gitconfig read-only
# ssh_auth_sock = false    # forward $SSH_AUTH_SOCK
# expose_port = true       # publish OpenCode's server on 127.0.0.1:4096+N
# enable_docker = false    # a private Docker daemon for the agent (see the docs first)
# cpu = 2.0
# memory = "4g"

# One table per workspace (a set of project directories). `jailoc add` appends here.
# [workspaces.myproject]
# paths = ["~/src/myproject"]
"#;
