# jailoc's default agent image: OpenCode under sandbox-init.
#
# For users with internet access (it pulls rust, node and the npm package). Build it from the
# repository root, which is the build context (the builder stage compiles sandbox-init from it):
#
#   docker build -f dockerfiles/opencode.Dockerfile -t jailoc/opencode .
#
# sandbox-init is the ENTRYPOINT, so a plain `docker run` is guarded too (flags: docs/e2e.md).
# The launcher embeds this file (include_str!) and bind-mounts its own companion sandbox-init over
# /usr/local/bin/sandbox-init, so the rules always come from the version that wrote the policy.

ARG RUST_VERSION=1.85
ARG NODE_VERSION=22
ARG DEBIAN_SUITE=bookworm

# --- builder: a static sandbox-init (crt-static comes from .cargo/config.toml) ---------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS sandbox-init-builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY launcher ./launcher
COPY sandbox-init ./sandbox-init
COPY tests ./tests
RUN cargo build --release --locked -p sandbox-init \
 && cp target/x86_64-unknown-linux-gnu/release/sandbox-init /sandbox-init

# --- runtime ----------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-${DEBIAN_SUITE}-slim
ARG OPENCODE_VERSION=1.18.33

# iptables: sandbox-init applies its rules with iptables-restore / ip6tables-restore.
# git, openssh-client, ca-certificates: what an agent needs to work on a repository.
# No sudo: the agent runs as UID 1000 with no capabilities and no way back to root.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables ca-certificates git openssh-client ripgrep \
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

COPY --from=sandbox-init-builder /sandbox-init /usr/local/bin/sandbox-init
# An empty policy dir: no policy.toml means egress "open" with every private range walled off.
RUN mkdir -p /etc/jailoc

ENV HOME=/home/agent
WORKDIR /home/agent
EXPOSE 4096
# No USER: sandbox-init starts as root to install the rules, then drops to UID 1000 for good.
ENTRYPOINT ["/usr/local/bin/sandbox-init", "--"]
CMD ["opencode", "serve", "--hostname", "0.0.0.0", "--port", "4096"]
