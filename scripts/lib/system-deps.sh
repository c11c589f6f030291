# shellcheck shell=bash
# The Debian packages the test tiers need. Sourced by scripts/test; installs only what is missing,
# and always refreshes the package lists first under CI (a clean machine has stale or none).

# tier 3 (namespace lab): iptables + ip6tables (nft and legacy), ip, dnsmasq, setcap/capsh, setpriv,
#   perl (raw-socket and ptrace attempts) and script (a pty) — both Essential in Debian, listed anyway
# tier 4 (Docker end-to-end): debootstrap for the offline base image
# benchmarks: hyperfine
JAILOC_TEST_PACKAGES=(iptables iproute2 dnsmasq-base libcap2-bin util-linux bsdutils perl-base procps debootstrap hyperfine ca-certificates)

ensure_system_deps() {
  local missing=()
  for pkg in "${JAILOC_TEST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${CI:-}" != "true" ] && [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if [ ${#missing[@]} -gt 0 ]; then
      echo "scripts/test: missing packages (${missing[*]}); run as root to install them" >&2
    fi
    return 0
  fi
  echo "==> installing system packages: ${JAILOC_TEST_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${JAILOC_TEST_PACKAGES[@]}" >/dev/null
  ensure_compose
}

# The Docker tier drives a Compose engine; the machines it targets run Docker Engine with
# Debian's docker-compose 1.29 (Compose v2 works too). Install 1.29 when neither answers.
ensure_compose() {
  if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
    return 0
  fi
  echo "==> installing docker-compose (no Compose engine answers)"
  apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
}
