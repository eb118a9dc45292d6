import { sandboxTemplate, sandboxWarmPool, AGENT_SANDBOX_GROUP } from './manifests.ts';

// The kustomize base under deploy/kubernetes/base/: what an admin applies once per
// namespace (agent-sandbox itself and the RuntimeClass handlers are installed separately).
// Placeholders (images, secret) are patched by the admin's overlay.

export const BASE_NAMESPACE = 'airlock-sessions';

export function kubernetesBase(): Record<string, (Record<string, unknown> | string)[]> {
  const template = sandboxTemplate({
    name: 'airlock-session',
    namespace: BASE_NAMESPACE,
    runtimeClassName: 'gvisor',
    agentImage: 'registry.example.invalid/airlock/agent:REPLACE',
    airlockImage: 'registry.example.invalid/airlock/airlock:REPLACE',
    gatewaySecret: 'airlock-gateway-credentials',
    policyConfigMap: 'airlock-session-policy',
    egressPoint: { namespace: 'airlock-system', labels: { 'app.kubernetes.io/name': 'airlock-egress' }, port: 3128 },
    auditCollector: {
      namespace: 'airlock-system',
      labels: { 'app.kubernetes.io/name': 'airlock-audit-collector' },
      port: 8443,
    },
    limits: { cpu: '1', memory: '2Gi', ephemeralStorage: '2Gi' },
  });
  return {
    'kustomization.yaml': [
      {
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        namespace: BASE_NAMESPACE,
        resources: ['namespace.yaml', 'runtimeclass.yaml', 'sandboxtemplate.yaml', 'warmpool.yaml', 'rbac.yaml'],
      },
    ],
    'namespace.yaml': [
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: BASE_NAMESPACE, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } },
      },
    ],
    // the handler (runsc) is installed on the nodes by the cluster admin (containerd config)
    'runtimeclass.yaml': [
      { apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', metadata: { name: 'gvisor' }, handler: 'runsc' },
    ],
    'sandboxtemplate.yaml': [template],
    'warmpool.yaml': [
      sandboxWarmPool({ name: 'airlock-session', namespace: BASE_NAMESPACE, template: 'airlock-session', replicas: 2 }),
    ],
    // what Airlock's supervisor may do: claims, and exec into the pods; templates, pools and pod specs stay the admin's
    'rbac.yaml': [
      {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'airlock-supervisor', namespace: BASE_NAMESPACE },
        automountServiceAccountToken: false,
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'airlock-claims', namespace: BASE_NAMESPACE },
        rules: [
          { apiGroups: [AGENT_SANDBOX_GROUP], resources: ['sandboxclaims'], verbs: ['create', 'get', 'delete'] },
          // the driver's channel to the pod (src/pod/protocol.ts): exec (a WebSocket GET, authorized as create since Kubernetes 1.30)
          { apiGroups: [''], resources: ['pods/exec'], verbs: ['create', 'get'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'airlock-claims', namespace: BASE_NAMESPACE },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'airlock-claims' },
        subjects: [{ kind: 'ServiceAccount', name: 'airlock-supervisor', namespace: BASE_NAMESPACE }],
      },
    ],
  };
}
