# Shared by scripts/lab/*: locate the built binaries (debug unless PROFILE=release).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PROFILE="${PROFILE:-debug}"
BIN="$ROOT/target/x86_64-unknown-linux-gnu/$PROFILE"
LAB_ID="${LAB_ID:-jlab}"
[ "$(id -u)" = 0 ] || { echo "the lab needs root (network namespaces)" >&2; exit 1; }
build() {
    local args=()
    [ "$PROFILE" = release ] && args+=(--release)
    (cd "$ROOT" && cargo build -q "${args[@]}" -p jailoc-tests --bins -p sandbox-init)
}
