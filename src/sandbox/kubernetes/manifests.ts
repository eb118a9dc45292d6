import { dirname } from 'node:path';
import {
  POD_AGENT_CONTAINER,
  POD_AIRLOCK,
  POD_CREDENTIALS_DIR,
  POD_GATEWAY_CONTAINER,
  POD_GATEWAY_PORT,
  POD_HOME,
  POD_POLICY_FILE,
  POD_SHARED_DIR,
  POD_WORKSPACE,
} from '../../pod/index.ts';
// Manifests for running Airlock sessions on Kubernetes with kubernetes-sigs/agent-sandbox
// (CRDs in extensions.agents.x-k8s.io/v1beta1: SandboxTemplate, SandboxWarmPool,
// SandboxClaim). The admin owns the template and the warm pool (deploy/kubernetes/); a
// session only claims a sandbox from the pool, so an agent, a repo policy or a developer
// can never choose the pod's runtime, service account, network or image.
//
// What the template fixes, and why:
// - runtimeClassName gvisor or kata: a second boundary around the agent (not the node's kernel alone);
// - automountServiceAccountToken: false and no service links: no cluster credential inside;
// - the agent container and the gateway sidecar: only the sidecar mounts the brokered
//   credentials and the egress token; the agent reaches the sidecar on 127.0.0.1:3128;
// - a NetworkPolicy (the template's own networkPolicy field) allowing egress only to the
//   org's egress point (the one that talks to the internet, accepting only the sidecar's
//   token), the audit collector and cluster DNS; no ipBlock at all, so the metadata address
//   169.254.169.254 and every other address are unreachable from the pod.

export const AGENT_SANDBOX_GROUP = 'extensions.agents.x-k8s.io';
export const AGENT_SANDBOX_VERSION = 'v1beta1';
export const KUBERNETES_RUNTIME_CLASSES = ['gvisor', 'kata'] as const;
export type KubernetesRuntimeClass = (typeof KUBERNETES_RUNTIME_CLASSES)[number];

export interface TemplateOptions {
  name: string;
  namespace: string;
  runtimeClassName: KubernetesRuntimeClass;
  /** the agent's image (tools, no credentials) */
  agentImage: string;
  /** Airlock's image: the pod entrypoint (supervisor) and the gateway sidecar */
  airlockImage: string;
  /** Secret with the brokered credentials and the egress token: mounted into the sidecar only */
  gatewaySecret: string;
  /** ConfigMap with the sessions' effective policy (key airlock.yaml): mounted into the sidecar only */
  policyConfigMap: string;
  /** labels of the org's egress point and of the audit collector (pods in the airlock-system namespace) */
  egressPoint: { namespace: string; labels: Record<string, string>; port: number };
  auditCollector: { namespace: string; labels: Record<string, string>; port: number };
  limits: { cpu: string; memory: string; ephemeralStorage: string };
}

/** The gateway container's own data: an emptyDir only it mounts. */
const GATEWAY_HOME = '/run/airlock/gateway';

const RESTRICTED = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

function peer(p: { namespace: string; labels: Record<string, string>; port: number }, protocol = 'TCP') {
  return {
    to: [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': p.namespace } },
        podSelector: { matchLabels: p.labels },
      },
    ],
    ports: [{ protocol, port: p.port }],
  };
}

/** The pod's two containers: the agent (the pod entrypoint runs its commands) and the gateway sidecar. */
function podContainers(options: TemplateOptions): Record<string, unknown>[] {
  const resources = {
    limits: {
      cpu: options.limits.cpu,
      memory: options.limits.memory,
      'ephemeral-storage': options.limits.ephemeralStorage,
    },
  };
  return [
    {
      // the pod entrypoint: Airlock's supervisor runs the agent's commands here, records them
      name: POD_AGENT_CONTAINER,
      image: options.agentImage,
      command: [POD_AIRLOCK, 'pod', 'supervise'],
      // both spellings: curl and others read only the lower-case http_proxy
      env: ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']
        .map((name) => ({ name, value: `http://127.0.0.1:${POD_GATEWAY_PORT}` }))
        .concat(['NO_PROXY', 'no_proxy'].map((name) => ({ name, value: 'localhost,127.0.0.1,::1' }))),
      securityContext: RESTRICTED,
      resources,
      volumeMounts: [
        { name: 'workspace', mountPath: POD_WORKSPACE },
        { name: 'tmp', mountPath: '/tmp' },
        { name: 'home', mountPath: POD_HOME },
        // what the gateway publishes for the agent's commands (placeholders, CA bundle): read-only here
        { name: 'gateway-shared', mountPath: POD_SHARED_DIR, readOnly: true },
      ],
    },
    {
      // the gateway: the only holder of brokered credentials and of the egress point's token
      name: POD_GATEWAY_CONTAINER,
      image: options.airlockImage,
      command: [
        '/opt/airlock/bin/airlock',
        'pod',
        'gateway',
        '--listen',
        `127.0.0.1:${POD_GATEWAY_PORT}`,
        '--policy',
        POD_POLICY_FILE,
        '--credentials',
        POD_CREDENTIALS_DIR,
        '--home',
        GATEWAY_HOME,
        '--shared',
        POD_SHARED_DIR,
      ],
      securityContext: RESTRICTED,
      resources: { limits: { cpu: '500m', memory: '256Mi' } },
      volumeMounts: [
        { name: 'gateway-credentials', mountPath: POD_CREDENTIALS_DIR, readOnly: true },
        { name: 'policy', mountPath: dirname(POD_POLICY_FILE), readOnly: true },
        // its CA and its own hash-chained audit store (shipped when a shared store is set)
        { name: 'gateway-data', mountPath: GATEWAY_HOME },
        { name: 'gateway-shared', mountPath: POD_SHARED_DIR },
      ],
    },
  ];
}

/** The admin-owned SandboxTemplate every Airlock session pod is made from. */
export function sandboxTemplate(options: TemplateOptions): Record<string, unknown> {
  if (!(KUBERNETES_RUNTIME_CLASSES as readonly string[]).includes(options.runtimeClassName))
    throw new TypeError(`runtimeClassName must be one of ${KUBERNETES_RUNTIME_CLASSES.join(', ')}`);
  return {
    apiVersion: `${AGENT_SANDBOX_GROUP}/${AGENT_SANDBOX_VERSION}`,
    kind: 'SandboxTemplate',
    metadata: { name: options.name, namespace: options.namespace, labels: { 'app.kubernetes.io/part-of': 'airlock' } },
    spec: {
      // a claim may not set the pod's environment: the template alone decides it
      envVarsInjectionPolicy: 'Disallowed',
      networkPolicyManagement: 'Managed',
      networkPolicy: {
        ingress: [],
        egress: [
          peer(options.egressPoint),
          peer(options.auditCollector),
          {
            to: [
              {
                namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
                podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
              },
            ],
            ports: [
              { protocol: 'UDP', port: 53 },
              { protocol: 'TCP', port: 53 },
            ],
          },
        ],
      },
      podTemplate: {
        metadata: { labels: { 'app.kubernetes.io/name': 'airlock-session', 'app.kubernetes.io/part-of': 'airlock' } },
        spec: {
          runtimeClassName: options.runtimeClassName,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          hostNetwork: false,
          hostPID: false,
          hostIPC: false,
          restartPolicy: 'Never',
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 100000,
            runAsGroup: 100000,
            fsGroup: 100000,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: podContainers(options),
          volumes: [
            { name: 'workspace', emptyDir: { sizeLimit: options.limits.ephemeralStorage } },
            { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '256Mi' } },
            { name: 'home', emptyDir: { sizeLimit: '512Mi' } },
            { name: 'gateway-credentials', secret: { secretName: options.gatewaySecret, defaultMode: 0o400 } },
            { name: 'policy', configMap: { name: options.policyConfigMap } },
            { name: 'gateway-data', emptyDir: { sizeLimit: '256Mi' } },
            { name: 'gateway-shared', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
          ],
        },
      },
    },
  };
}

/** The admin-owned warm pool claims are served from (v1beta1 claims name a pool, not a template). */
export function sandboxWarmPool(o: {
  name: string;
  namespace: string;
  template: string;
  replicas: number;
}): Record<string, unknown> {
  return {
    apiVersion: `${AGENT_SANDBOX_GROUP}/${AGENT_SANDBOX_VERSION}`,
    kind: 'SandboxWarmPool',
    metadata: { name: o.name, namespace: o.namespace, labels: { 'app.kubernetes.io/part-of': 'airlock' } },
    spec: { replicas: o.replicas, sandboxTemplateRef: { name: o.template } },
  };
}

/** Kubernetes object names: lower-case DNS-1123 labels of at most 63 characters. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The claim one Airlock session makes: its name is the session id; it is deleted when the session ends. */
export function sandboxClaim(o: {
  session: string;
  namespace: string;
  warmPool: string;
  ttlSeconds: number;
}): Record<string, unknown> {
  if (!DNS_LABEL.test(o.session)) throw new TypeError(`not a valid object name: ${JSON.stringify(o.session)}`);
  return {
    apiVersion: `${AGENT_SANDBOX_GROUP}/${AGENT_SANDBOX_VERSION}`,
    kind: 'SandboxClaim',
    metadata: {
      name: o.session,
      namespace: o.namespace,
      labels: { 'app.kubernetes.io/part-of': 'airlock', 'airlock.dev/session': o.session },
    },
    spec: {
      warmPoolRef: { name: o.warmPool },
      // the cluster ends a sandbox whose supervisor never came back to delete it
      lifecycle: { shutdownPolicy: 'Delete', shutdownTime: new Date(Date.now() + o.ttlSeconds * 1000).toISOString() },
    },
  };
}
