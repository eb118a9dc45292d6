#!/usr/bin/env bash
# Builds Airlock's one native part, the tunnel download relay thread (src/egress/relay/relay.c),
# into build/relay.node with the system C compiler against the pinned Node-API headers
# (npm package node-api-headers; Node-API is ABI-stable, so one build serves every Node 24).
# Without a compiler the gateway still works: tunnels relay on Node's event loop, and the gateway records why.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/src/egress/relay/relay.c"
OUT="$ROOT/build/relay.node"
HDR="$ROOT/node_modules/node-api-headers/include"
CC="${CC:-cc}"
if [ -f "$OUT" ] && [ "$OUT" -nt "$SRC" ]; then exit 0; fi
if ! command -v "$CC" >/dev/null; then echo "[build] no C compiler ($CC): tunnels relay in Node" >&2; exit 0; fi
if [ ! -f "$HDR/node_api.h" ]; then echo "[build] node-api-headers missing (run npm ci): tunnels relay in Node" >&2; exit 0; fi
mkdir -p "$ROOT/build"
"$CC" -O2 -g -Wall -Wextra -std=gnu11 -fPIC -shared -pthread -fvisibility=hidden \
  -I"$HDR" -o "$OUT.tmp" "$SRC"
mv "$OUT.tmp" "$OUT"
echo "[build] built $OUT" >&2
