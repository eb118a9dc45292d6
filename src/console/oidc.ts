import type { Hono } from 'hono';
import { getCookie, setCookie, deleteCookie } from 'hono/cookie';
import * as oidc from 'openid-client';
import { AirlockError } from '../common/index.ts';
import type { Policy } from '../policy/index.ts';
import { isLoopbackHost, rolesFor, type ConsoleUser, type Logins } from './auth.ts';
import { errorPage, markup } from './html.ts';
import type { ConsoleEnv, ConsoleDeps } from './server.ts';

// OpenID Connect login (authorization code + PKCE, state and nonce checked by
// openid-client). Roles come from the org policy's console.roles, matched against the
// verified e-mail and the IdP's groups claim; nobody listed gets no session. The
// identity recorded for every action (and used for separation of duties) is the e-mail.

const PENDING_TTL_MS = 10 * 60_000;
const MAX_PENDING = 1000;
const STATE_COOKIE = 'airlock_console_login';

interface Pending {
  verifier: string;
  nonce: string;
  expires: number;
}

export interface OidcSetup {
  policy: Policy['console'];
  /** where the browser reaches the console (the redirect URI is <publicUrl>/auth/callback) */
  publicUrl: string;
  env: NodeJS.ProcessEnv;
  logins: Logins;
  secure: boolean;
  sessionCookie: string;
}

export function checkOidcPolicy(p: Policy['console']): void {
  const where = 'the org policy (AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml)';
  if (!p.oidc.issuer || !p.oidc.clientId)
    throw new AirlockError(
      'USAGE',
      `the console has no login method: console.oidc.issuer and console.oidc.clientId are not set in ${where}`,
      'set them, or pass --dev-user NAME for a single user on this machine (loopback only)',
    );
  let u: URL;
  try {
    u = new URL(p.oidc.issuer);
  } catch {
    throw new AirlockError(
      'POLICY_INVALID',
      `console.oidc.issuer is not a URL: ${JSON.stringify(p.oidc.issuer)}`,
      'use the https URL of your IdP',
    );
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.hostname.replace(/^\[|\]$/g, '')))) {
    throw new AirlockError(
      'POLICY_INVALID',
      `console.oidc.issuer must be https (got ${u.protocol})`,
      "plain http is accepted only for an IdP on this machine's loopback (tests)",
    );
  }
}

async function discover(s: OidcSetup): Promise<oidc.Configuration> {
  const issuer = new URL(s.policy.oidc.issuer);
  const secret = s.env[s.policy.oidc.clientSecretEnv];
  const insecure = issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : undefined;
  try {
    return await oidc.discovery(
      issuer,
      s.policy.oidc.clientId,
      secret || undefined,
      secret ? oidc.ClientSecretBasic(secret) : oidc.None(),
      insecure,
    );
  } catch (e) {
    throw new AirlockError(
      'UNAVAILABLE',
      `cannot reach the IdP at ${issuer.origin}: ${(e as Error).message}`,
      'check console.oidc.issuer and that the IdP is up',
    );
  }
}

function claimList(v: unknown): string[] {
  return Array.isArray(v)
    ? v.filter((x): x is string => typeof x === 'string').slice(0, 500)
    : typeof v === 'string'
      ? [v]
      : [];
}

export function registerOidcLogin(app: Hono<ConsoleEnv>, deps: ConsoleDeps, setup: OidcSetup): void {
  const pending = new Map<string, Pending>();
  let config: Promise<oidc.Configuration> | null = null;
  const configured = () =>
    (config ??= discover(setup).catch((e: unknown) => {
      config = null;
      throw e;
    }));
  // known once the server listens (its port may be chosen by the system)
  const redirectUri = () => new URL('/auth/callback', setup.publicUrl).toString();

  app.get('/login', async (ctx) => {
    const cfg = await configured();
    const now = Date.now();
    for (const [k, p] of pending) if (p.expires <= now || pending.size >= MAX_PENDING) pending.delete(k);
    const state = oidc.randomState();
    const p: Pending = {
      verifier: oidc.randomPKCECodeVerifier(),
      nonce: oidc.randomNonce(),
      expires: now + PENDING_TTL_MS,
    };
    pending.set(state, p);
    // Lax, not Strict: the IdP's redirect back is a cross-site navigation
    setCookie(ctx, STATE_COOKIE, state, {
      httpOnly: true,
      sameSite: 'Lax',
      path: '/auth',
      secure: setup.secure,
      maxAge: PENDING_TTL_MS / 1000,
    });
    const url = oidc.buildAuthorizationUrl(cfg, {
      redirect_uri: redirectUri(),
      scope: setup.policy.oidc.scopes.join(' '),
      state,
      nonce: p.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(p.verifier),
      code_challenge_method: 'S256',
    });
    return ctx.redirect(url.toString(), 302);
  });

  app.get('/auth/callback', async (ctx) => {
    const state = getCookie(ctx, STATE_COOKIE);
    deleteCookie(ctx, STATE_COOKIE, { path: '/auth' });
    const p = state ? pending.get(state) : undefined;
    if (state) pending.delete(state);
    const refuse = (why: string, status: 400 | 403) => {
      deps.store.append({
        type: 'console.login_refused',
        severity: 'medium',
        decision: 'deny',
        rule: 'console.roles',
        data: { via: 'oidc', summary: why },
      });
      return ctx.html(
        errorPage('Log in refused', why, 'log in again from the start page, or ask an admin for a console role'),
        status,
      );
    };
    if (!p || p.expires <= Date.now()) return refuse('this login was not started here, or it expired', 400);
    const cfg = await configured();
    let claims: Record<string, unknown>;
    try {
      const current = new URL(ctx.req.url);
      const tokens = await oidc.authorizationCodeGrant(
        cfg,
        new URL(current.pathname + current.search, setup.publicUrl),
        { pkceCodeVerifier: p.verifier, expectedState: state, expectedNonce: p.nonce, idTokenExpected: true },
      );
      const id = tokens.claims()!;
      claims = { ...(await oidc.fetchUserInfo(cfg, tokens.access_token, id.sub)), ...id };
    } catch (e) {
      return refuse(`the IdP's answer did not verify: ${(e as Error).message}`, 400);
    }
    const email = typeof claims.email === 'string' && claims.email_verified !== false ? claims.email : null;
    const groups = claimList(claims[setup.policy.oidc.groupsClaim]);
    const roles = rolesFor(setup.policy.roles, email, groups);
    const identity = email ?? `${String(claims.sub)}@${new URL(setup.policy.oidc.issuer).host}`;
    if (!roles.length) return refuse(`${identity} has no console role (console.roles in the org policy)`, 403);
    const user: ConsoleUser = { identity, roles, via: 'oidc' };
    const login = setup.logins.open(user);
    setCookie(ctx, setup.sessionCookie, login.id, {
      httpOnly: true,
      sameSite: 'Strict',
      path: '/',
      secure: setup.secure,
    });
    ctx.set('login', login);
    deps.record(ctx, 'login', { outcome: `logged in via OIDC with roles ${roles.join(', ')}`, target: { groups } });
    // a same-site navigation, so the Strict session cookie is sent with it
    return ctx.html(
      markup`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/proposals"><title>Logged in</title><a href="/proposals">Continue</a>`,
    );
  });
}
