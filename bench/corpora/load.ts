// Loads the labelled peer corpora (bench/corpora/<peer>/samples.jsonl) and scores a scanner
// on them. A sample is one peer test case: label `secret` (the peer's true positive) or
// `clean` (its false positive / "should not flag"). When the peer names the exact span
// (secretlint ranges, detect-secrets expected values) a finding must overlap it; otherwise
// any finding in a `secret` sample counts.
//
// The samples are other projects' published test data and look like secrets on purpose.
// They are data for this benchmark only: nothing that scans this repository for secrets
// should read bench/corpora/ (see bench/corpora/README.md).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PeerSample {
  id: string;
  family: string;
  label: 'secret' | 'clean';
  text: string;
  /** Offsets of the secret in text, when the peer states them. */
  spans?: [number, number][];
  path?: string;
  /** File in the peer repository the sample came from. */
  origin: string;
}

/** A sample (by id) or a whole family the peer labels otherwise than we do, and why. */
export type Dispute = { id: string; why: string } | { family: string; why: string };

export const CORPORA_DIR = dirname(fileURLToPath(import.meta.url));
export const PEERS = ['gitleaks', 'detect-secrets', 'secretlint'] as const;

// Adjudication. Peers' fixtures often use placeholder values as their "true positives"
// (xxxx…, AAAA…, abcd1234abcd1234…, aBcDeFgHiJ…, …EXAMPLE), which the engine is meant to
// suppress (issue 15: "sequential or repeated characters in a valid-looking format"); and
// some of their "false positives" are real secrets of another format (a GitHub token in
// the GitLab plugin's tests). Both kinds are left out of the adjudicated score, each with
// its reason, and the as-labelled score is reported beside it. The placeholder test below is
// deliberately independent of the engine's own code.

const ASCENDING = ['abcdefghijklmnopqrstuvwxyz', '01234567890', 'zyxwvutsrqponmlkjihgfedcba', '9876543210'];
function fixtureReason(value: string): string | undefined {
  if (/(.)\1{5,}/.test(value.slice(1).replace(/^(.)\1*/, ''))) return 'fixture value: a run of 6+ identical characters';
  const low = value.toLowerCase();
  for (const seq of ASCENDING) for (let i = 0; i + 8 <= seq.length; i++) if (low.includes(seq.slice(i, i + 8))) return `fixture value: a run of consecutive characters "${seq.slice(i, i + 8)}…"`;
  if (/(.{4,16})\1\1/i.test(value)) return 'fixture value: a 4-16 character unit repeated 3+ times';
  if (/example/i.test(value)) return 'fixture value: says EXAMPLE';
  if (value.includes('eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ')) return 'documented example: the jwt.io sample token (John Doe)';
  return undefined;
}

/** Why a peer's positive is a placeholder fixture (judged on its labelled span, or on every
 * long token of the sample when the peer gives no span), or undefined. */
export function placeholderFixture(s: PeerSample): string | undefined {
  if (s.label !== 'secret') return undefined;
  if (s.spans?.length) {
    const reasons = s.spans.map(([a, b]) => fixtureReason(s.text.slice(a, b)));
    return reasons.every(Boolean) ? reasons[0] : undefined;
  }
  const longest = (s.text.match(/[A-Za-z0-9_+/=.-]{10,}/g) ?? []).sort((a, b) => b.length - a.length)[0];
  return longest ? fixtureReason(longest) : undefined;
}

/** A sample's spans without the placeholder-fixture ones (scored only on real values). */
export function realSpans(s: PeerSample): [number, number][] | undefined {
  return s.spans?.filter(([a, b]) => !fixtureReason(s.text.slice(a, b)));
}

export function loadPeer(peer: string): { samples: PeerSample[]; disputes: Map<string, string> } {
  const file = join(CORPORA_DIR, peer, 'samples.jsonl');
  const samples = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as PeerSample);
  const dfile = join(CORPORA_DIR, peer, 'disputed.json');
  const disputes = new Map<string, string>();
  for (const s of samples) { const why = placeholderFixture(s); if (why) disputes.set(s.id, why); }
  if (existsSync(dfile)) {
    for (const d of JSON.parse(readFileSync(dfile, 'utf8')) as Dispute[]) {
      if ('id' in d) disputes.set(d.id, d.why);
      else for (const s of samples) if (s.family === d.family) disputes.set(s.id, d.why);
    }
  }
  return { samples, disputes };
}

export type Span = { start: number; end: number };
export type SampleScanner = (s: PeerSample) => Promise<Span[]>;

export interface Score {
  tp: number; fn: number; fp: number; tn: number;
  recall: number; precision: number;
  byFamily: Map<string, { secret: number; found: number; clean: number; flagged: number }>;
  missed: string[]; falseAlarms: string[];
}

const overlaps = (a: Span, s: [number, number]) => a.start < s[1] && a.end > s[0];

/** Sample-level confusion counts (disputed samples left out). */
export async function scorePeer(samples: PeerSample[], disputes: Map<string, string>, scan: SampleScanner): Promise<Score> {
  const sc: Score = { tp: 0, fn: 0, fp: 0, tn: 0, recall: 0, precision: 0, byFamily: new Map(), missed: [], falseAlarms: [] };
  for (const s of samples) {
    if (disputes.has(s.id)) continue;
    const hits = await scan(s);
    const fam = sc.byFamily.get(s.family) ?? { secret: 0, found: 0, clean: 0, flagged: 0 };
    sc.byFamily.set(s.family, fam);
    if (s.label === 'secret') {
      fam.secret++;
      const spans = realSpans(s);
      const found = spans?.length ? spans.every((sp) => hits.some((h) => overlaps(h, sp))) : hits.length > 0;
      if (found) { sc.tp++; fam.found++; } else { sc.fn++; sc.missed.push(s.id); }
    } else {
      fam.clean++;
      if (hits.length) { sc.fp++; fam.flagged++; sc.falseAlarms.push(s.id); } else sc.tn++;
    }
  }
  sc.recall = sc.tp / Math.max(1, sc.tp + sc.fn);
  sc.precision = sc.tp / Math.max(1, sc.tp + sc.fp);
  return sc;
}
