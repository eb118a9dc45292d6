// The Kubernetes runtime's manifests and cluster calls, checked without a cluster (none can
// run on these machines): every manifest Airlock makes or ships validates against the real
// agent-sandbox CRD schemas (test/fixtures/kubernetes/agent-sandbox, from
// kubernetes-sigs/agent-sandbox k8s/crds at 2fd412d5, Apache-2.0) and its pod spec and
// network policy against the Kubernetes API models of @kubernetes/client-node (generated from
// the Kubernetes OpenAPI document); the claim client talks to FakeKubeApiServer, a small
// local HTTP server that only pretends to be a kube-apiserver (it is NOT one).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { Ajv } from 'ajv';
import * as k8s from '@kubernetes/client-node';
import {
  sandboxTemplate,
  sandboxClaim,
  sandboxWarmPool,
  SandboxClaims,
  AGENT_SANDBOX_GROUP,
} from '../../src/sandbox/kubernetes/index.ts';
import { kubernetesBase } from '../../src/sandbox/kubernetes/base.ts';
import { driverFor } from '../../src/sandbox/index.ts';
import { stringify } from 'yaml';
import { ROOT, airlock, cleanup, makeRepo, tmp } from '../helpers.ts';
import { FakeKubeApiServer } from './fake-kube-api.ts';

const CRDS = join(ROOT, 'test', 'fixtures', 'kubernetes', 'agent-sandbox');
const DEPLOY = join(ROOT, 'deploy', 'kubernetes', 'base');

/** kind → validator of the CRD's served v1beta1 schema. */
function crdValidators(): Map<string, (o: unknown) => string[]> {
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addFormat('int32', true);
  ajv.addFormat('int64', true);
  ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
  const out = new Map<string, (o: unknown) => string[]>();
  for (const f of readdirSync(CRDS).filter((n) => n.endsWith('.yaml'))) {
    const crd = parse(readFileSync(join(CRDS, f), 'utf8')) as {
      spec: { names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: object } }[] };
    };
    const v = crd.spec.versions.find((x) => x.name === 'v1beta1');
    if (!v) continue;
    const validate = ajv.compile(v.schema.openAPIV3Schema);
    out.set(crd.spec.names.kind, (o) =>
      validate(o) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`),
    );
  }
  return out;
}

type Model = { getAttributeTypeMap(): { name: string; baseName: string; type: string }[] };
/** Every key of `obj` must be a field of the Kubernetes API model `type` (recursively): no misspelt or invented field slips by. */
function unknownFields(obj: unknown, type: string, path = ''): string[] {
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr)
    return Array.isArray(obj)
      ? obj.flatMap((x, i) => unknownFields(x, arr[1]!, `${path}[${i}]`))
      : [`${path}: not a list`];
  const model = (k8s as unknown as Record<string, Model | undefined>)[type];
  if (!model?.getAttributeTypeMap || typeof obj !== 'object' || obj === null) return [];
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(obj).flatMap(([k, v]) =>
    fields.has(k) ? unknownFields(v, fields.get(k)!, `${path}.${k}`) : [`${path}.${k} is not a field of ${type}`],
  );
}

const options = {
  name: 't',
  namespace: 'ns',
  runtimeClassName: 'kata' as const,
  agentImage: 'a',
  airlockImage: 'b',
  gatewaySecret: 's',
  policyConfigMap: 'p',
  egressPoint: { namespace: 'airlock-system', labels: { app: 'egress' }, port: 3128 },
  auditCollector: { namespace: 'airlock-system', labels: { app: 'audit' }, port: 8443 },
  limits: { cpu: '1', memory: '1Gi', ephemeralStorage: '1Gi' },
};

describe('Kubernetes manifests (agent-sandbox CRDs, Kubernetes API models)', () => {
  const crd = crdValidators();

  it('every manifest under deploy/kubernetes is generated from the code (in sync) and valid', () => {
    for (const [file, docs] of Object.entries(kubernetesBase())) {
      const want = docs.map((d) => (typeof d === 'string' ? d : stringify(d))).join('---\n');
      assert.equal(
        readFileSync(join(DEPLOY, file), 'utf8'),
        want,
        `deploy/kubernetes/base/${file} is stale: run node scripts/gen-kubernetes.ts`,
      );
    }
    let crs = 0;
    for (const f of readdirSync(DEPLOY)) {
      for (const doc of parseAllDocuments(readFileSync(join(DEPLOY, f), 'utf8'))) {
        const o = doc.toJS() as { kind: string; apiVersion: string };
        if (!o.apiVersion.startsWith(AGENT_SANDBOX_GROUP)) continue;
        assert.deepEqual(crd.get(o.kind)!(o), [], `${f}: ${o.kind}`);
        crs++;
      }
    }
    assert.equal(crs, 2, 'the template and the warm pool');
  });

  it('the template: gvisor or kata only, no service-account token, restricted containers, egress to the gateway, collector and DNS only', () => {
    const t = sandboxTemplate(options) as {
      spec: { podTemplate: { spec: Record<string, unknown> }; networkPolicy: Record<string, unknown> };
    };
    assert.deepEqual(crd.get('SandboxTemplate')!(t), []);
    const pod = t.spec.podTemplate.spec;
    assert.deepEqual(unknownFields(pod, 'V1PodSpec'), []);
    assert.equal(pod.runtimeClassName, 'kata');
    assert.equal(pod.automountServiceAccountToken, false);
    for (const c of pod.containers as {
      securityContext: { allowPrivilegeEscalation: boolean; capabilities: { drop: string[] } };
    }[]) {
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
    }
    // only the sidecar mounts the credentials, the policy and its own data (CA, audit store)
    const mounts = (pod.containers as { name: string; volumeMounts: { name: string }[] }[]).map((c) => [
      c.name,
      c.volumeMounts.map((m) => m.name),
    ]);
    assert.ok(
      ['gateway-credentials', 'policy', 'gateway-data'].every((v) =>
        mounts.every(([name, m]) => (name === 'gateway') === (m as string[]).includes(v)),
      ),
      JSON.stringify(mounts),
    );
    // the network policy as a Kubernetes NetworkPolicySpec: no ipBlock anywhere, so 169.254.169.254 (metadata) and the internet are unreachable
    assert.deepEqual(
      unknownFields({ ...t.spec.networkPolicy, policyTypes: ['Ingress', 'Egress'] }, 'V1NetworkPolicySpec'),
      [],
    );
    assert.ok(!JSON.stringify(t.spec.networkPolicy).includes('ipBlock'));
    assert.throws(
      () => sandboxTemplate({ ...options, runtimeClassName: 'runc' as never }),
      /runtimeClassName must be one of gvisor, kata/,
    );
  });

  it('the claim names a warm pool, ends itself, and refuses a name that is no DNS label', () => {
    const c = sandboxClaim({
      session: 'ses-1nh2abcdefgh',
      namespace: 'ns',
      warmPool: 'airlock-session',
      ttlSeconds: 3600,
    });
    assert.deepEqual(crd.get('SandboxClaim')!(c), []);
    assert.deepEqual(
      crd.get('SandboxWarmPool')!(sandboxWarmPool({ name: 'p', namespace: 'ns', template: 't', replicas: 1 })),
      [],
    );
    for (const bad of ['../x', 'UPPER', 'a'.repeat(64), 'x\n', ''])
      assert.throws(
        () => sandboxClaim({ session: bad, namespace: 'ns', warmPool: 'p', ttlSeconds: 1 }),
        /not a valid object name/,
      );
    // the validator is not a rubber stamp: a claim without warmPoolRef, or with a bad shutdown policy, fails
    assert.notDeepEqual(crd.get('SandboxClaim')!({ ...c, spec: {} }), []);
    assert.notDeepEqual(
      crd.get('SandboxClaim')!({ ...c, spec: { warmPoolRef: { name: 'p' }, lifecycle: { shutdownPolicy: 'Never' } } }),
      [],
    );
  });
});

describe('sandbox.runtime: kubernetes from a policy: the settings it needs, and the kubeconfig it trusts', () => {
  const limits = { wallSeconds: 600 };
  const settings = (kubeconfig: string, more: Record<string, unknown> = {}) => ({
    runtime: 'kubernetes',
    limits,
    kubernetes: {
      kubeconfig,
      namespace: 'airlock-sessions',
      warmPool: 'airlock-session',
      claimTimeoutSeconds: 30,
      ...more,
    },
  });
  const refused = (pattern: RegExp) => (e: Error & { exitCode?: number }) =>
    e.exitCode === 65 && pattern.test(e.message);

  it('an org policy selecting kubernetes without a cluster: airlock run exits 65 naming sandbox.kubernetes and the fix, not 69', () => {
    const home = tmp('airlock-k8s-missing-');
    const repo = makeRepo({ 'README.md': '# app\n' });
    try {
      const org = join(home, 'org.yaml');
      writeFileSync(org, 'sandbox:\n  runtime: kubernetes\n');
      const r = airlock(['run', '--repo', repo, '--', 'true'], { home, env: { AIRLOCK_ORG_POLICY: org } });
      assert.equal(r.status, 65, r.stderr);
      assert.match(r.stderr, /sandbox\.kubernetes is not set/);
      assert.match(r.stderr, /sandbox\.kubernetes\.kubeconfig/, 'the fix names the key to set');
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      cleanup(home, repo);
    }
  });

  it('builds the kubernetes driver from the settings (the context chosen by the policy); a context the kubeconfig lacks is refused', async () => {
    const dir = tmp('airlock-k8s-kc-');
    const fake = new FakeKubeApiServer();
    try {
      await fake.start();
      const kc = join(dir, 'kubeconfig');
      writeFileSync(kc, fake.kubeconfigText(), { mode: 0o600 });
      const driver = await driverFor(settings(kc, { context: 'fake' }));
      assert.equal(driver.name, 'kubernetes');
      assert.deepEqual(driver.check(), { ok: true });
      await assert.rejects(driverFor(settings(kc, { context: 'prod' })), refused(/has no context "prod"/));
    } finally {
      fake.close();
      cleanup(dir);
    }
  });

  it('refuses a kubeconfig someone else could have written (its exec plugins run on the host): link, writable by others, foreign owner, not a file', async () => {
    const dir = tmp('airlock-k8s-kc-');
    try {
      const kc = join(dir, 'kubeconfig');
      writeFileSync(kc, 'apiVersion: v1\nkind: Config\n', { mode: 0o600 });
      const link = join(dir, 'link');
      symlinkSync(kc, link);
      await assert.rejects(driverFor(settings(link)), refused(/is a symbolic link/));
      const open = join(dir, 'open');
      writeFileSync(open, 'apiVersion: v1\nkind: Config\n');
      chmodSync(open, 0o666);
      await assert.rejects(driverFor(settings(open)), refused(/writable by others/));
      const foreign = join(dir, 'foreign');
      writeFileSync(foreign, 'apiVersion: v1\nkind: Config\n', { mode: 0o600 });
      chownSync(foreign, 12345, 12345);
      await assert.rejects(driverFor(settings(foreign)), refused(/owned by uid 12345/));
      await assert.rejects(driverFor(settings(dir)), refused(/not a regular file/));
      await assert.rejects(driverFor(settings(join(dir, 'absent'))), refused(/cannot be read \(ENOENT\)/));
      await assert.rejects(
        driverFor({ runtime: 'kubernetes', limits }),
        refused(/names no cluster/),
        'no settings at all: refused, never a fallback to another runtime',
      );
    } finally {
      cleanup(dir);
    }
  });
});

describe('SandboxClaims against FakeKubeApiServer (a fake, not a cluster)', () => {
  const fake = new FakeKubeApiServer();
  let claims: SandboxClaims;
  before(async () => {
    await fake.start();
    const kc = SandboxClaims.kubeConfig(fake.kubeconfigText());
    claims = new SandboxClaims(kc, { namespace: 'airlock-sessions', warmPool: 'airlock-session', ttlSeconds: 600 });
  });
  after(() => {
    fake.close();
  });

  it("creates a valid claim, waits for Ready, deletes it; every call at the agent-sandbox path with the kubeconfig's token", async () => {
    const crd = crdValidators();
    await claims.create('ses-1nh2abcdefgh');
    const post = fake.requests[0]!;
    assert.equal(post.method, 'POST');
    assert.equal(post.url, '/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/airlock-sessions/sandboxclaims');
    assert.equal(post.auth, 'Bearer fake-token');
    assert.deepEqual(crd.get('SandboxClaim')!(post.body), []);
    const s = await claims.waitReady('ses-1nh2abcdefgh', 10_000, 10);
    assert.deepEqual(s, { ready: true, reason: 'SandboxReady', sandbox: 'sbx-1', podIPs: ['10.0.0.9'] });
    await claims.delete('ses-1nh2abcdefgh');
    assert.equal(fake.requests.at(-1)!.method, 'DELETE');
    assert.equal(
      fake.requests.at(-1)!.url,
      '/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/airlock-sessions/sandboxclaims/ses-1nh2abcdefgh?propagationPolicy=Foreground',
    );
    await claims.delete('ses-1nh2abcdefgh'); // already gone (404): fine
  });

  it('a refusal by the cluster is a clear error naming the permission, never a stack', async () => {
    fake.forbid = true;
    try {
      await assert.rejects(
        claims.create('ses-1nh2abcdefgj'),
        (e: Error & { kind?: string; hint?: string }) =>
          e.kind === 'UNAVAILABLE' && /HTTP 403/.test(e.message) && /sandboxclaims/.test(e.hint ?? ''),
      );
    } finally {
      fake.forbid = false;
    }
  });
});
