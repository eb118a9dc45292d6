#!/usr/bin/env bash
# Tiny test suite: exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
printf 'one two three\n' > /tmp/wc-sample.txt
got=$(bin/wordcount /tmp/wc-sample.txt)
if [ "$got" = 3 ]; then echo "ok - wordcount counts words"; else echo "not ok - wordcount: expected 3, got $got"; exit 1; fi
