# jailoc's default agent image: OpenCode under sandbox-init.
#
# One stage on one base image: the first `jailoc up` pulls only node (Debian slim) and, through
# apt and npm, the tools below and OpenCode. No Rust toolchain: the build context holds the
# prebuilt static sandbox-init, as the launcher's does (it embeds this file and writes the binary
# next to it). To build the same image from the repository:
#
#   cargo build --release -p sandbox-init
#   ctx=$(mktemp -d) && cp dockerfiles/opencode.Dockerfile "$ctx/Dockerfile" \
#     && cp target/x86_64-unknown-linux-gnu/release/sandbox-init "$ctx/"
#   docker build -t jailoc/opencode "$ctx"
#
# sandbox-init is the ENTRYPOINT, so a plain `docker run` is guarded too (flags: docs/e2e.md).
# The launcher also bind-mounts its own companion sandbox-init over /usr/local/bin/sandbox-init,
# so the rules always come from the version that wrote the policy.

ARG NODE_VERSION=22
ARG DEBIAN_SUITE=bookworm
FROM node:${NODE_VERSION}-${DEBIAN_SUITE}-slim
ARG OPENCODE_VERSION=1.18.33

# What a working agent reaches for first (docs/e2e.md has the sizes):
#   iptables         sandbox-init applies its rules with iptables-restore / ip6tables-restore
#   ca-certificates  TLS for git, curl, npm and OpenCode's own provider calls
#   git              the repositories it works on; OpenCode's snapshots (undo) are git too
#   openssh-client   git over SSH, with the forwarded agent (ssh_auth_sock)
#   ripgrep          OpenCode's grep and glob tools run `rg`; without it OpenCode downloads its
#                    own copy on first use, which allowlist egress refuses
#   curl             HTTP: APIs, downloads, every "curl ... | sh" install line
#   jq               JSON from APIs, package manifests and tool output
#   python3          the scripting language agents write one-off scripts in (the full standard
#                    library: json, urllib, csv, zipfile)
#   procps           ps, pkill, top: find and stop the dev server the agent started
# Not here: language servers and compilers (OpenCode fetches the server for a project's language
# on first use; put a project's toolchain in its own image, `dockerfile = ...`), fd (OpenCode's
# file search is rg, and find is there), sudo (the agent has no way back to root).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      iptables ca-certificates git openssh-client ripgrep curl jq python3 procps \
 && rm -rf /var/lib/apt/lists/*

# The node image ships a `node` user with UID 1000; the agent needs that UID (sandbox-init's
# default and the owner of bind-mounted project files on most hosts).
RUN userdel --remove node \
 && groupadd --gid 1000 agent \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/agent --shell /bin/bash agent \
 && mkdir -p /home/agent/.config /home/agent/.local /home/agent/.cache \
 && chown -R 1000:1000 /home/agent

RUN npm install --global "opencode-ai@${OPENCODE_VERSION}" \
 && npm cache clean --force \
 && opencode --version

# The static sandbox-init from the build context. An empty policy dir: no policy.toml means
# egress "open" with every private range walled off.
COPY sandbox-init /usr/local/bin/sandbox-init
RUN chmod 0755 /usr/local/bin/sandbox-init && mkdir -p /etc/jailoc

ENV HOME=/home/agent
WORKDIR /home/agent
EXPOSE 4096
# No USER: sandbox-init starts as root to install the rules, then drops to UID 1000 for good.
ENTRYPOINT ["/usr/local/bin/sandbox-init", "--"]
CMD ["opencode", "serve", "--hostname", "0.0.0.0", "--port", "4096"]
