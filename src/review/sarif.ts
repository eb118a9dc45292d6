import type { Proposal } from './store.ts';
import type { Finding } from './types.ts';
import { commitsJson, type AgentCommit } from './commits.ts';

// SARIF 2.1.0 export of a proposal's findings, for code-scanning UIs and SIEMs.

const LEVEL: Record<Finding['severity'], 'error' | 'warning' | 'note'> = {
  critical: 'error',
  high: 'error',
  medium: 'warning',
  low: 'note',
  info: 'note',
};
const SCORE: Record<Finding['severity'], string> = {
  critical: '9.5',
  high: '8.0',
  medium: '5.5',
  low: '3.0',
  info: '0.0',
};

/** `agentCommits`: the agent's commits (escaped in the output), shown beside the findings. */
export function toSarif(p: Proposal, agentCommits: AgentCommit[] = []): Record<string, unknown> {
  const rules = [...new Map(p.findings.map((f) => [f.rule, f])).values()].map((f) => ({
    id: f.rule,
    name: f.rule.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : '')),
    shortDescription: { text: `${f.check} check: ${f.rule}` },
    defaultConfiguration: { level: LEVEL[f.severity] },
    properties: { 'security-severity': SCORE[f.severity], tags: ['security', 'airlock', f.check] },
  }));
  const ruleIndex = new Map(rules.map((r, i) => [r.id, i]));
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'airlock-review', informationUri: 'https://airlock.dev', version: '0.1.0', rules } },
        automationDetails: { id: `airlock/session/${p.session}/proposal/${p.id}` },
        versionControlProvenance: p.repo ? [{ repositoryUri: `file://${p.repo}`, revisionId: p.head }] : undefined,
        properties: {
          proposal: p.id,
          hash: p.hash,
          session: p.session,
          base: p.base,
          head: p.head,
          agentCommits: commitsJson(agentCommits),
        },
        results: p.findings.map((f) => ({
          ruleId: f.rule,
          ruleIndex: ruleIndex.get(f.rule),
          level: LEVEL[f.severity],
          message: { text: f.message },
          locations: f.file
            ? [
                {
                  physicalLocation: {
                    artifactLocation: { uri: encodeURI(f.file) },
                    ...(f.line > 0
                      ? { region: { startLine: f.line, ...(f.column ? { startColumn: f.column } : {}) } }
                      : {}),
                  },
                },
              ]
            : [],
          ...(f.fingerprint ? { partialFingerprints: { secretSha256: f.fingerprint } } : {}),
          properties: { severity: f.severity, blocking: !!f.blocking },
        })),
      },
    ],
  };
}
