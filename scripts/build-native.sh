#!/usr/bin/env bash
# Builds Airlock's native parts with the system C compiler:
#  - build/relay.node: the tunnel download relay thread (src/egress/relay/relay.c), against the
#    pinned Node-API headers (npm package node-api-headers; Node-API is ABI-stable, so one build
#    serves every Node 24). Without it tunnels relay on Node's event loop, and the gateway says why.
#  - build/airlock-tracer: process telemetry by seccomp user notification (src/sandbox/tracer/tracer.c).
#    Without it (or without root) sessions trace with strace, and session.start says which tracer ran.
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

HDR="$ROOT/node_modules/node-api-headers/include"
if [ ! -f "$HDR/node_api.h" ]; then echo "[build] node-api-headers missing (run npm ci): tunnels relay in Node" >&2; exit 0; fi
build "$ROOT/build/relay.node" "$ROOT/src/egress/relay/relay.c" -fPIC -shared -pthread -fvisibility=hidden -I"$HDR"
