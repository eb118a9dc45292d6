#!/usr/bin/env bash
# Builds Airlock's native parts with the system C compiler:
#  - build/relay.node: the tunnel download relay thread (src/egress/relay/relay.c), against the
#    pinned Node-API headers (npm package node-api-headers; Node-API is ABI-stable, so one build
#    serves every Node 24). Without it tunnels relay on Node's event loop, and the gateway says why.
#  - build/airlock-tracer: process telemetry by seccomp user notification (src/sandbox/tracer/tracer.c).
#    Without it (or without root) sessions trace with strace, and session.start says which tracer ran.
#  - build/airlock-attach and build/warm.node: the warm start (`airlock warm on`, src/cli/warm/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CC="${CC:-cc}"
if ! command -v "$CC" >/dev/null; then echo "[build] no C compiler ($CC): tunnels relay in Node, processes are traced with strace" >&2; exit 0; fi
mkdir -p "$ROOT/build"
CFLAGS=(-O2 -g -Wall -Wextra -std=gnu11)

# build OUT SRC EXTRA_FLAGS...: rebuilt when the source is newer, written atomically
build() {
  local out="$1" src="$2"; shift 2
  if [ -f "$out" ] && [ "$out" -nt "$src" ]; then return 0; fi
  "$CC" "${CFLAGS[@]}" "$@" -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
  echo "[build] built $out" >&2
}

build "$ROOT/build/airlock-tracer" "$ROOT/src/sandbox/tracer/tracer.c" || echo "[build] airlock-tracer failed to build: processes are traced with strace" >&2
build "$ROOT/build/airlock-attach" "$ROOT/src/cli/warm/attach.c" || echo "[build] airlock-attach failed to build: no warm start" >&2

HDR="$ROOT/node_modules/node-api-headers/include"
if [ ! -f "$HDR/node_api.h" ]; then echo "[build] node-api-headers missing (run npm ci): tunnels relay in Node" >&2; exit 0; fi
build "$ROOT/build/relay.node" "$ROOT/src/egress/relay/relay.c" -fPIC -shared -pthread -fvisibility=hidden -I"$HDR" || echo "[build] relay.node failed to build: tunnels relay in Node" >&2

# The warm start (src/cli/warm/): the client bin/airlock execs when this user's spare waits, and
# the spare's descriptor passing. Without them every `airlock` starts cold, which only costs time.
build "$ROOT/build/warm.node" "$ROOT/src/cli/warm/spare.c" -fPIC -shared -fvisibility=hidden -I"$HDR" || echo "[build] warm.node failed to build: no warm start" >&2
