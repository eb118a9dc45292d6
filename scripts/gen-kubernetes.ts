// Writes deploy/kubernetes/base/ (a kustomize base) from src/sandbox/kubernetes/manifests.ts,
// the one source of the manifests; test/sandbox/kubernetes.test.ts checks they are in sync
// and valid against the agent-sandbox CRD schemas. Run: node scripts/gen-kubernetes.ts
import { writeFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { kubernetesBase } from '../src/sandbox/kubernetes/base.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'deploy', 'kubernetes', 'base');
mkdirSync(dir, { recursive: true });
for (const [file, docs] of Object.entries(kubernetesBase())) {
  writeFileSync(join(dir, file), docs.map((d) => (typeof d === 'string' ? d : stringify(d))).join('---\n'));
}
process.stdout.write(`wrote ${dir}\n`);
