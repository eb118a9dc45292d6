import { AirlockError } from '../common/index.ts';

// The sandbox environment is built, never inherited: a short allowlist of harmless
// host variables, what the policy adds, and Airlock's own. Credential-looking names
// are refused even when allowlisted: credentials are brokered at the gateway instead.
export const BASE_ALLOWED = [
  'LANG',
  'LANGUAGE',
  'TERM',
  'TZ',
  'COLORTERM',
  'NO_COLOR',
  'FORCE_COLOR',
  'COLUMNS',
  'LINES',
];
const LC = /^LC_[A-Z]+$/;
const CREDENTIAL_LIKE =
  /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|PWD_?HASH|CREDENTIAL|CREDENTIALS|AUTH|COOKIE|SESSION|PRIVATE|CERT|SIGNATURE|SALT|DSN|CONN(ECTION)?_?STR(ING)?)(_|$)|^(AWS|AZURE|GCP|GOOGLE|GH|GITHUB|GITLAB|NPM|PYPI|OPENAI|ANTHROPIC|HF|SLACK|STRIPE|DOCKER|VAULT|DATABASE_URL|SSH_AUTH_SOCK)/i;

export function looksLikeCredential(name: string): boolean {
  if (name === 'PWD' || name === 'OLDPWD') return false;
  return CREDENTIAL_LIKE.test(name);
}

export function credentialRefusal(name: string, where: string): AirlockError {
  return new AirlockError(
    'POLICY_INVALID',
    `${where}: environment variable ${name} looks like a credential and is never passed into the sandbox`,
    `declare it under \`credentials:\` in airlock.yaml so the gateway brokers it (the agent gets a placeholder, the real value is added only on requests to the hosts you bind it to)`,
  );
}

export interface EnvSpec {
  hostEnv: NodeJS.ProcessEnv;
  allow: string[];
  set: Record<string, string>;
  /** Airlock-controlled values (HOME, PATH, proxy settings, placeholders…); always win. */
  fixed: Record<string, string>;
}

export function buildSandboxEnv(s: EnvSpec): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of s.allow) if (looksLikeCredential(name)) throw credentialRefusal(name, 'sandbox.env.allow');
  for (const name of Object.keys(s.set))
    if (looksLikeCredential(name)) throw credentialRefusal(name, 'sandbox.env.set');
  for (const [k, v] of Object.entries(s.hostEnv)) {
    if (v === undefined) continue;
    if (BASE_ALLOWED.includes(k) || LC.test(k) || s.allow.includes(k)) env[k] = v;
  }
  Object.assign(env, s.set, s.fixed);
  return env;
}
