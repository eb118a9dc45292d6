// Builds the peer corpora (bench/corpora/<peer>/samples.jsonl) from peers' published test
// data. Only samples (and their peers' labels) are taken; no peer code is run or copied.
//
//   node bench/corpora/extract.ts gitleaks       GIT_DIR   (cmd/generate/config/rules/*.go)
//   node bench/corpora/extract.ts secretlint     GIT_DIR   (packages/@secretlint/*/test/snapshots)
//   node bench/corpora/extract.ts detect-secrets GIT_DIR   (tests/plugins/*_test.py, via python3's ast)
//
// GIT_DIR is a bare clone of the peer repository (its HEAD is read). Generated values
// (gitleaks' secrets.NewSecret(regex)) are drawn with randexp from a fixed seed, so a
// re-run gives the same file.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import randexp from 'randexp';
import { mulberry32 } from '../secrets-corpus.ts';
import type { PeerSample } from './load.ts';

// randexp is CommonJS with an ES-style `default` in its typings: take the class either way.
const RandExp = ((randexp as unknown as { default?: typeof randexp }).default ?? randexp) as unknown as typeof randexp.default;

const HERE = dirname(fileURLToPath(import.meta.url));

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['--git-dir', dir, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
}

// ---------------------------------------------------------------- gitleaks (Go source)

type Tok = { t: 'str' | 'id' | 'p'; v: string };

function goTokens(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) { i++; continue; }
    if (src.startsWith('//', i)) { const j = src.indexOf('\n', i); i = j < 0 ? src.length : j; continue; }
    if (src.startsWith('/*', i)) { const j = src.indexOf('*/', i + 2); i = j < 0 ? src.length : j + 2; continue; }
    if (c === '`') { const j = src.indexOf('`', i + 1); out.push({ t: 'str', v: src.slice(i + 1, j) }); i = j + 1; continue; }
    if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      out.push({ t: 'str', v: JSON.parse(src.slice(i, j + 1).replace(/\\x([0-9a-fA-F]{2})/g, '\\u00$1').replace(/\\'/g, "'")) as string });
      i = j + 1; continue;
    }
    const id = /^[A-Za-z_][\w.]*/.exec(src.slice(i, i + 200));
    if (id) { out.push({ t: 'id', v: id[0] }); i += id[0].length; continue; }
    const op = /^(?::=|\.\.\.|[-+(){}[\],:=;*&!<>|%/^.?0-9])/.exec(src.slice(i, i + 3));
    out.push({ t: 'p', v: op ? op[0] : c }); i += op ? op[0].length : 1;
  }
  return out;
}

const GO_PATTERN_HELPERS: Record<string, (n: string) => string> = {
  'utils.Numeric': (n) => `[0-9]{${n}}`,
  'utils.Hex': (n) => `[a-f0-9]{${n}}`,
  'utils.AlphaNumeric': (n) => `[a-z0-9]{${n}}`,
  'utils.AlphaNumericExtendedShort': (n) => `[a-z0-9_-]{${n}}`,
  'utils.AlphaNumericExtended': (n) => `[a-z0-9=_\\-]{${n}}`,
  'utils.AlphaNumericExtendedLong': (n) => `[a-z0-9\\/=_\\+\\-]{${n}}`,
};

class Unsupported extends Error {}

/** Evaluates the Go expressions gitleaks uses to build samples: string literals, +,
 * fmt.Sprintf, utils.<charset>(n), secrets.NewSecret(re), GenerateSampleSecret(s) and
 * local string variables. Anything else is Unsupported (the sample is skipped and counted). */
class GoEval {
  toks: Tok[]; pos = 0; vars = new Map<string, string[]>(); secretOf = new Map<string, string>(); rand: () => number; templates: string[];
  constructor(toks: Tok[], rand: () => number, templates: string[]) { this.toks = toks; this.rand = rand; this.templates = templates; }
  peek(o = 0): Tok | undefined { return this.toks[this.pos + o]; }
  eat(v?: string): Tok { const t = this.toks[this.pos++]; if (!t || (v !== undefined && t.v !== v)) throw new Unsupported(`expected ${v} got ${t?.v}`); return t; }
  gen(pattern: string): string {
    const src = pattern.replace(/^\(\?i\)/, '').replace(/\(\?i:/g, '(?:').replace(/\(\?-i:/g, '(?:');
    const r = new RandExp(src);
    r.randInt = (a: number, b: number) => a + Math.floor(this.rand() * (b - a + 1));
    r.max = 8;
    return r.gen();
  }
  sample(id: string, s: string): string[] {
    const out = this.templates.map((t) => t.replaceAll('{i}', id).replaceAll('{I}', id.toUpperCase()).replaceAll('{s}', s));
    for (const t of out) this.secretOf.set(t, s); // the span of the secret is known
    return out;
  }
  /** A list-valued expression ([]string{...}, GenerateSampleSecrets, append, a var). */
  list(): string[] {
    const t = this.peek()!;
    if (t.v === '[' ) { this.eat('['); this.eat(']'); this.eat('string'); return this.braced(); }
    if (t.v === 'map') { this.eat('map'); this.eat('['); this.eat('string'); this.eat(']'); this.eat('string'); return this.braced(true); }
    if (t.v === 'utils.GenerateSampleSecrets') { this.eat(); this.eat('('); const id = this.str(); this.eat(','); const s = this.str(); this.eat(')'); return this.sample(id, s); }
    if (t.v === 'append') {
      this.eat(); this.eat('(');
      const out = [...this.list()];
      while (this.peek()?.v === ',') {
        this.eat(',');
        if (this.peek()?.v === ')') break;
        if (this.peek()?.v === 'utils.GenerateSampleSecrets' || (this.peek()?.t === 'id' && this.vars.has(this.peek()!.v) && this.peek(1)?.v === '...')) { out.push(...this.list()); if (this.peek()?.v === '...') this.eat('...'); }
        else out.push(this.str());
      }
      this.eat(')');
      return out;
    }
    if (t.t === 'id' && this.vars.has(t.v)) { this.eat(); return this.vars.get(t.v)!; }
    throw new Unsupported(`list ${t.v}`);
  }
  /** {a, b, c} or {"path": a, ...} (paths are kept as "path\0value"). */
  braced(isMap = false): string[] {
    this.eat('{');
    const out: string[] = [];
    while (this.peek()?.v !== '}') {
      const start = this.pos;
      try {
        if (isMap) { const k = this.str(); this.eat(':'); out.push(`${k}\0${this.str()}`); }
        else out.push(this.str());
      } catch (e) {
        if (!(e instanceof Unsupported)) throw e;
        this.pos = start; this.skipElement(); out.push('\0unsupported');
      }
      if (this.peek()?.v === ',') this.eat(',');
    }
    this.eat('}');
    return out;
  }
  skipElement(): void {
    let depth = 0;
    for (;;) {
      const t = this.peek()!;
      if (depth === 0 && (t.v === ',' || t.v === '}')) return;
      if (t.v === '(' || t.v === '{' || t.v === '[') depth++;
      if (t.v === ')' || t.v === '}' || t.v === ']') depth--;
      this.pos++;
    }
  }
  str(): string {
    let s = this.term();
    while (this.peek()?.v === '+') { this.eat('+'); s += this.term(); }
    return s;
  }
  args(): string[] {
    this.eat('(');
    const a: string[] = [];
    while (this.peek()?.v !== ')') { a.push(this.str()); if (this.peek()?.v === ',') this.eat(','); }
    this.eat(')');
    return a;
  }
  term(): string {
    const t = this.eat();
    if (t.t === 'str') return t.v;
    if (t.v === '(') { const s = this.str(); this.eat(')'); return s; }
    if (t.t !== 'id') throw new Unsupported(`term ${t.v}`);
    const helper = GO_PATTERN_HELPERS[t.v];
    if (helper) return helper(this.args()[0]!);
    if (t.v === 'utils.Hex8_4_4_4_12') { this.args(); return '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'; }
    if (t.v === 'secrets.NewSecret' || t.v === 'newPlausibleSecret') {
      const re = this.args()[0]!;
      for (let i = 0; i < 50; i++) { const v = this.gen(re); if (t.v === 'secrets.NewSecret' || /[1-9]/.test(v)) return v; }
      return this.gen(re);
    }
    if (t.v === 'utils.GenerateSampleSecret') { const [id, s] = this.args(); return `${id}_api_token = "${s}"`; }
    if (t.v === 'fmt.Sprintf') { const [f, ...rest] = this.args(); let k = 0; return f!.replace(/%[sdv]/g, () => rest[k++] ?? ''); }
    if (t.v === 'strings.Repeat') { const a = this.args(); return a[0]!.repeat(Number(a[1])); }
    const v = this.vars.get(t.v);
    if (v && v.length === 1) return v[0]!;
    throw new Unsupported(`id ${t.v}`);
  }
}

function gitleaksTemplates(dir: string): string[] {
  const src = git(dir, 'show', 'HEAD:cmd/generate/config/utils/generate.go');
  const body = src.slice(src.indexOf('samples := map[string]string{'));
  const toks = goTokens(body.slice(body.indexOf('{'), body.indexOf('\n\t}\n') + 3));
  const ev = new GoEval(toks, () => 0, []);
  return ev.braced(true).map((kv) => kv.split('\0')[1]!);
}

/** Splits a rule file into functions, and each function into tps/fps assignments. */
function gitleaksFile(name: string, src: string, templates: string[], rand: () => number, out: PeerSample[], stats: { skipped: number }): void {
  const funcs = src.split(/\nfunc /).slice(1);
  for (const fn of funcs) {
    const ruleId = /RuleID:\s*"([^"]+)"/.exec(fn)?.[1] ?? name;
    const toks = goTokens(fn.slice(fn.indexOf('{')));
    const ev = new GoEval(toks, rand, templates);
    for (let i = 0; i < toks.length; i++) {
      const t = toks[i]!;
      const next = toks[i + 1]?.v;
      if (t.t !== 'id' || (next !== ':=' && next !== '=')) continue;
      const isSample = /^(?:tps|fps)$/.test(t.v);
      ev.pos = i + 2;
      try {
        const first = ev.peek()!;
        const listy = first.v === '[' || first.v === 'map' || first.v === 'append' || first.v === 'utils.GenerateSampleSecrets';
        const val = listy ? ev.list() : [ev.str()];
        ev.vars.set(t.v, val);
        if (!isSample) continue;
        const label = t.v === 'tps' ? 'secret' : 'clean';
        // `tps = append(tps, …)` re-lists the earlier samples: keep only the new ones.
        const fresh = next === '=' && toks[i + 2]?.v === 'append' && toks[i + 4]?.v === t.v ? val.slice((ev.vars.get(`__${t.v}`) ?? []).length) : val;
        ev.vars.set(`__${t.v}`, val);
        for (const v of fresh) {
          if (v === '\0unsupported') { stats.skipped++; continue; }
          const [p, text] = v.includes('\0') ? v.split('\0') as [string, string] : [undefined, v];
          if (!text.trim()) continue; // path-only samples (pkcs12 file names): not text
          const secret = ev.secretOf.get(text);
          const at = secret ? text.indexOf(secret) : -1;
          const spans: [number, number][] | undefined = secret && at >= 0 && label === 'secret' ? [[at, at + secret.length]] : undefined;
          out.push({ id: `gitleaks/${ruleId}/${label}/${out.length}`, family: ruleId, label, text, ...(spans ? { spans } : {}), ...(p ? { path: p } : {}), origin: `cmd/generate/config/rules/${name}.go` });
        }
      } catch (e) {
        if (!(e instanceof Unsupported)) throw e;
        if (isSample) stats.skipped++;
      }
    }
  }
}

function gitleaks(dir: string): { samples: PeerSample[]; note: string } {
  const templates = gitleaksTemplates(dir);
  const rand = mulberry32(0x6e17ea);
  const files = git(dir, 'ls-tree', '--name-only', 'HEAD', 'cmd/generate/config/rules/').split('\n').filter((f) => f.endsWith('.go'));
  const out: PeerSample[] = [];
  const stats = { skipped: 0 };
  for (const f of files) {
    const name = f.split('/').pop()!.replace(/\.go$/, '');
    if (name === 'stopwords') continue;
    gitleaksFile(name, git(dir, 'show', `HEAD:${f}`), templates, rand, out, stats);
  }
  return { samples: out, note: `${templates.length} sample contexts per GenerateSampleSecrets call; ${stats.skipped} samples skipped (expressions the extractor does not evaluate)` };
}

// ---------------------------------------------------------------- secretlint (snapshots)

// secretlint's own rules that are about files or options rather than secret values.
const SECRETLINT_SKIP = /^secretlint-rule-(?:no-dotenv|no-homedir|pattern|example|filter-comments|preset-|no-k8s-kind-secret|secp256k1-privatekey)/;

function secretlint(dir: string): { samples: PeerSample[]; note: string } {
  const files = git(dir, 'ls-tree', '-r', '--name-only', 'HEAD', 'packages/@secretlint/').split('\n');
  const cases = new Map<string, { input?: string; output?: string; rc?: string }>();
  for (const f of files) {
    const m = /^packages\/@secretlint\/(secretlint-rule-[^/]+)\/test\/snapshots\/([^/]+)\/(input[^/]*|output\.json|\.secretlintrc\.json)$/.exec(f);
    if (!m || SECRETLINT_SKIP.test(m[1]!)) continue;
    const key = `${m[1]}/${m[2]}`;
    const c = cases.get(key) ?? {};
    if (m[3] === 'output.json') c.output = f; else if (m[3] === '.secretlintrc.json') c.rc = f; else c.input = f;
    cases.set(key, c);
  }
  const out: PeerSample[] = [];
  let optionCases = 0;
  for (const [key, c] of cases) {
    if (!c.input || !c.output) continue;
    if (c.rc) { optionCases++; continue; } // depends on rule options (allows, enableIDScanRule): not a plain verdict
    const text = git(dir, 'show', `HEAD:${c.input}`);
    const o = JSON.parse(git(dir, 'show', `HEAD:${c.output}`)) as { messages: { range: [number, number] }[] };
    const rule = key.split('/')[0]!.replace(/^secretlint-rule-/, '');
    const spans = o.messages.map((m) => m.range);
    const ext = /\/input(\.[^/]*)?$/.exec(c.input)?.[1] ?? '.txt';
    out.push({ id: `secretlint/${key}`, family: rule, label: spans.length ? 'secret' : 'clean', text, spans, path: `input${ext}`, origin: c.input });
  }
  return { samples: out, note: `${optionCases} cases that depend on a .secretlintrc (rule options) left out` };
}

// ---------------------------------------------------------------- detect-secrets (pytest params)

// python3's own ast evaluates the parametrize lists: string literals, module-level string
// constants, str.format, % and +. Any other expression is skipped.
const PY_EXTRACT = String.raw`
import ast, json, sys, pathlib
out = []
for path in sorted(pathlib.Path(sys.argv[1]).glob('*_test.py')):
    tree = ast.parse(path.read_text())
    consts = {}
    def ev(n):
        if isinstance(n, ast.Constant): return n.value
        if isinstance(n, ast.Name) and n.id in consts: return consts[n.id]
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add): return ev(n.left) + ev(n.right)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mod):
            r = ev(n.right); return ev(n.left) % (tuple(r) if isinstance(r, list) else r)
        if isinstance(n, (ast.Tuple, ast.List)): return [ev(e) for e in n.elts]
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == 'format':
            return ev(n.func.value).format(*[ev(a) for a in n.args], **{k.arg: ev(k.value) for k in n.keywords})
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == 'join':
            return ev(n.func.value).join(ev(n.args[0]))
        raise ValueError(ast.dump(n)[:80])
    for st in tree.body:
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
            try: consts[st.targets[0].id] = ev(st.value)
            except Exception: pass
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'parametrize' and len(node.args) >= 2): continue
        names = node.args[0].value if isinstance(node.args[0], ast.Constant) else ''
        names = [x.strip() for x in names.split(',')]
        try: rows = ev(node.args[1])
        except Exception as e:
            items = getattr(node.args[1], 'elts', [])
            rows = []
            for it in items:
                try: rows.append(ev(it))
                except Exception: out.append({'file': path.name, 'skip': 1})
        for row in rows:
            if not isinstance(row, list) or len(row) < 2 or not isinstance(row[0], str): continue
            out.append({'file': path.name, 'names': names, 'row': row})
print(json.dumps(out))
`;

// Plugins whose verdict is not "is this a secret": public IPs, the entropy plugins' raw
// charset checks, and the base class tests.
const DS_SKIP = /^(?:ip_public|base|high_entropy_strings)_test\.py$/;

function detectSecrets(dir: string): { samples: PeerSample[]; note: string } {
  const tmp = join(HERE, '.tmp-detect-secrets');
  mkdirSync(tmp, { recursive: true });
  try {
    for (const f of git(dir, 'ls-tree', '--name-only', 'HEAD', 'tests/plugins/').split('\n').filter((x) => x.endsWith('_test.py'))) {
      writeFileSync(join(tmp, f.split('/').pop()!), git(dir, 'show', `HEAD:${f}`));
    }
    const r = spawnSync('python3', ['-c', PY_EXTRACT, tmp], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(r.stderr);
    const rows = JSON.parse(r.stdout) as { file: string; names?: string[]; row?: unknown[]; skip?: number }[];
    const out: PeerSample[] = [];
    let skipped = 0;
    for (const x of rows) {
      if (x.skip || !x.row || !x.names) { skipped++; continue; }
      if (DS_SKIP.test(x.file)) continue;
      const [text, verdict] = x.row as [string, unknown];
      const iVerdict = x.names.findIndex((n) => /should_flag|expected|secret/.test(n));
      const v = iVerdict > 0 ? x.row[iVerdict] : verdict;
      if (typeof v !== 'boolean' && typeof v !== 'string' && v !== null) continue;
      if (!text || text.length > 20_000) continue; // the LONG_LINE performance row
      const label = v === true || (typeof v === 'string' && v.length > 0) ? 'secret' : 'clean';
      const family = x.file.replace(/_test\.py$/, '');
      const spans: [number, number][] = typeof v === 'string' && text.includes(v) ? [[text.indexOf(v), text.indexOf(v) + v.length]] : [];
      out.push({ id: `detect-secrets/${family}/${out.length}`, family, label, text, ...(spans.length ? { spans } : {}), origin: `tests/plugins/${x.file}` });
    }
    return { samples: out, note: `${skipped} parametrize rows skipped (expressions the extractor does not evaluate)` };
  } finally {
    spawnSync('rm', ['-rf', tmp]);
  }
}

const PEERS: Record<string, (dir: string) => { samples: PeerSample[]; note: string }> = { gitleaks, secretlint, 'detect-secrets': detectSecrets };

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [peer, dir] = process.argv.slice(2);
  const fn = peer ? PEERS[peer] : undefined;
  if (!fn || !dir) { process.stderr.write('usage: node bench/corpora/extract.ts gitleaks|secretlint|detect-secrets GIT_DIR\n'); process.exit(64); }
  const { samples, note } = fn(dir);
  const commit = git(dir, 'rev-parse', 'HEAD').trim();
  mkdirSync(join(HERE, peer!), { recursive: true });
  writeFileSync(join(HERE, peer!, 'samples.jsonl'), samples.map((s) => JSON.stringify(s)).join('\n') + '\n');
  writeFileSync(join(HERE, peer!, 'source.json'), JSON.stringify({ peer, commit, samples: samples.length, secret: samples.filter((s) => s.label === 'secret').length, clean: samples.filter((s) => s.label === 'clean').length, note }, null, 1) + '\n');
  process.stdout.write(`${peer}: ${samples.length} samples from ${commit.slice(0, 12)} (${note})\n`);
}
