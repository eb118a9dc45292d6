import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { AirlockError } from '../../common/index.ts';
import { AGENT_SANDBOX_GROUP, AGENT_SANDBOX_VERSION, sandboxClaim } from './manifests.ts';

// The cluster side of a Kubernetes session: create the session's SandboxClaim, wait until
// agent-sandbox reports it Ready (and which Sandbox/pod serves it), delete it at the end.
// Every call goes through @kubernetes/client-node, so kubeconfig auth (tokens, exec
// plugins, client certificates) is the library's, not ours.

const PLURAL = 'sandboxclaims';

export interface ClaimStatus {
  ready: boolean;
  reason: string | null;
  sandbox: string | null;
  podIPs: string[];
}

export interface ClaimTarget {
  namespace: string;
  warmPool: string;
  /** the claim's own end of life, enforced by the cluster even if the supervisor dies */
  ttlSeconds: number;
}

export class SandboxClaims {
  private api: CustomObjectsApi;
  private target: ClaimTarget;

  constructor(kc: KubeConfig, target: ClaimTarget) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.target = target;
  }

  /** A kubeconfig from the usual places (KUBECONFIG, ~/.kube/config, in-cluster), or from its text. */
  static kubeConfig(text?: string): KubeConfig {
    const kc = new KubeConfig();
    if (text) kc.loadFromString(text);
    else kc.loadFromDefault();
    return kc;
  }

  async create(session: string): Promise<void> {
    const body = sandboxClaim({ session, ...this.target });
    try {
      await this.api.createNamespacedCustomObject({
        group: AGENT_SANDBOX_GROUP,
        version: AGENT_SANDBOX_VERSION,
        namespace: this.target.namespace,
        plural: PLURAL,
        body,
      });
    } catch (e) {
      throw clusterError('create the SandboxClaim', e);
    }
  }

  async status(session: string): Promise<ClaimStatus> {
    let obj: {
      status?: {
        conditions?: { type?: string; status?: string; reason?: string }[];
        sandbox?: { name?: string; podIPs?: string[] };
      };
    };
    try {
      obj = (await this.api.getNamespacedCustomObject({
        group: AGENT_SANDBOX_GROUP,
        version: AGENT_SANDBOX_VERSION,
        namespace: this.target.namespace,
        plural: PLURAL,
        name: session,
      })) as typeof obj;
    } catch (e) {
      throw clusterError('read the SandboxClaim', e);
    }
    const ready = obj.status?.conditions?.find((c) => c.type === 'Ready');
    return {
      ready: ready?.status === 'True',
      reason: ready?.reason ?? null,
      sandbox: obj.status?.sandbox?.name ?? null,
      podIPs: (obj.status?.sandbox?.podIPs ?? []).slice(0, 8),
    };
  }

  /** Polls until Ready (bounded); fails closed with the cluster's reason. */
  async waitReady(session: string, timeoutMs = 120_000, intervalMs = 500): Promise<ClaimStatus> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.status(session);
      if (s.ready && s.sandbox) return s;
      if (Date.now() > end) {
        throw new AirlockError(
          'UNAVAILABLE',
          `the SandboxClaim ${session} did not become ready (${s.reason ?? 'no reason given'})`,
          `check the warm pool ${this.target.warmPool} in namespace ${this.target.namespace} (kubectl get sandboxwarmpool,sandboxclaim -n ${this.target.namespace})`,
        );
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  /** Deletes the claim (and with it the sandbox and its pod); a claim already gone is fine. */
  async delete(session: string): Promise<void> {
    try {
      await this.api.deleteNamespacedCustomObject({
        group: AGENT_SANDBOX_GROUP,
        version: AGENT_SANDBOX_VERSION,
        namespace: this.target.namespace,
        plural: PLURAL,
        name: session,
        propagationPolicy: 'Foreground',
      });
    } catch (e) {
      if ((e as { code?: number }).code === 404) return;
      throw clusterError('delete the SandboxClaim', e);
    }
  }
}

function clusterError(what: string, e: unknown): AirlockError {
  const code = (e as { code?: number }).code;
  const detail = code ? `HTTP ${code}` : e instanceof Error ? e.message.slice(0, 200) : String(e).slice(0, 200);
  return new AirlockError(
    'UNAVAILABLE',
    `could not ${what}: ${detail}`,
    code === 403
      ? "the kubeconfig's identity needs create/get/delete on sandboxclaims.extensions.agents.x-k8s.io in that namespace (deploy/kubernetes/rbac.yaml)"
      : 'check the kubeconfig (KUBECONFIG) and that agent-sandbox is installed in the cluster',
  );
}
