#!/usr/bin/env bash
# The main job: sets up everything, then runs a scripted agent on the bundled example
# repository under Airlock, and shows what it changed, what was blocked and what was
# recorded. Safe to run repeatedly. Uses a throwaway AIRLOCK_HOME unless one is set.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_BIN="$(bash "$ROOT/scripts/setup.sh" | tail -1)"
export PATH="$NODE_BIN:$PATH"
AIRLOCK="$ROOT/bin/airlock"
WORK="$(mktemp -d /tmp/airlock-demo.XXXXXX)"
export AIRLOCK_HOME="${AIRLOCK_HOME:-$WORK/airlock-home}"

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }

# A fresh git checkout of the example repo (the bundled copy has no .git of its own).
cp -r "$ROOT/examples/demo-repo" "$WORK/repo"
git -C "$WORK/repo" init -q -b main
git -C "$WORK/repo" add -A
git -C "$WORK/repo" -c user.name=Demo -c user.email=demo@example.com commit -qm "wordcount with a bug"

# The agent script is mounted read-only; a fake credential sits in the host environment.
cat > "$WORK/policy.yaml" <<YAML
version: 1
sandbox:
  limits: { memoryMB: 512, pids: 128, wallSeconds: 300, diskMB: 256 }
  mounts:
    readOnly: ["$ROOT/examples/agent"]
YAML
export DEMO_API_KEY="sk-demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$WORK/fake-home/.ssh" && echo "-----FAKE HOST KEY $DEMO_API_KEY-----" > "$WORK/fake-home/.ssh/id_rsa"

bold "== airlock run: a scripted agent on $WORK/repo"
cd "$WORK/repo"
set +e
HOME="$WORK/fake-home" "$AIRLOCK" run --policy "$WORK/policy.yaml" -- bash "$ROOT/examples/agent/demo-agent.sh"
status=$?
set -e
SESSION="$("$AIRLOCK" sessions --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);console.log(r[r.length-1].id)})')"

echo
bold "== what the audit log recorded for $SESSION (denials and limits)"
"$AIRLOCK" audit show "$SESSION" --json 2>/dev/null | node -e '
let s=""; process.stdin.on("data",d=>s+=d).on("end",()=>{
  let ev; try { ev = JSON.parse(s); } catch { ev = []; }
  if (!Array.isArray(ev)) ev = ev.events ?? [];
  const counts = {}; for (const e of ev) counts[e.type] = (counts[e.type] ?? 0) + 1;
  console.log("  events by type:", JSON.stringify(counts));
  for (const e of ev.filter(e => e.decision === "deny")) console.log(`  denied  ${e.rule}: ${e.data.reason ?? e.data.target ?? ""}`);
});' || "$AIRLOCK" sessions

echo
bold "== the result: a proposed change, nothing applied to the repository"
RESULT="$AIRLOCK_HOME/sessions/$SESSION/result.git"
git --git-dir "$RESULT" log --oneline refs/airlock/base..refs/airlock/head
git --git-dir "$RESULT" diff --stat refs/airlock/base refs/airlock/head
echo "  host checkout untouched: $(git -C "$WORK/repo" status --porcelain | wc -l) changed files, HEAD $(git -C "$WORK/repo" log --oneline -1)"
"$AIRLOCK" review list 2>/dev/null || true
echo
bold "== the proposal a human reviews (airlock review show 1): checks, then the diff"
"$AIRLOCK" review show 1 2>/dev/null | head -40 || true
echo
bold "== tamper-evidence"
"$AIRLOCK" audit verify 2>/dev/null || node -e "import('$ROOT/src/audit/index.ts').then(m=>{const r=m.verifyChain('$AIRLOCK_HOME/audit.db');console.log(r.ok?'  audit log intact: '+r.events+' events':'  TAMPERED: '+JSON.stringify(r.firstBad))})"
echo
echo "Data dir: $AIRLOCK_HOME   (try: AIRLOCK_HOME=$AIRLOCK_HOME $AIRLOCK audit show $SESSION)"
exit $status
