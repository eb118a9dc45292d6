import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { getCookie, setCookie, deleteCookie } from 'hono/cookie';
import { secureHeaders } from 'hono/secure-headers';
import { bodyLimit } from 'hono/body-limit';
import { AirlockError, airlockHome, ensureHome, isAirlockError } from '../common/index.ts';
import { AuditStore, type Severity } from '../audit/index.ts';
import {
  Logins,
  can,
  isLoopbackHost,
  sameSecret,
  token,
  type ConsoleUser,
  type LoginSession,
  type Permission,
  type Role,
} from './auth.ts';
import { errorPage, type PageContext } from './html.ts';
import { registerProposalPages } from './pages/proposals.ts';
import { registerApprovalPages } from './pages/approvals.ts';
import { registerSessionPages } from './pages/sessions.ts';
import { registerStream } from './stream.ts';
import { registerAuditPages } from './pages/audit.ts';
import { registerPolicyPage } from './pages/policy.ts';
import { orgPolicy } from './pages/common.ts';
import { registerOidcLogin, checkOidcPolicy, type OidcSetup } from './oidc.ts';
import { sharedChanges, type SharedChanges } from './shared-live.ts';
import { sharedStoreUrl } from '../store/index.ts';

// `airlock console`: server-rendered pages over the same module functions the CLI calls
// (review, command-rules, session, audit); no decision is made here twice. Hono, because
// it is small, has no dependencies of its own, speaks web-standard Request/Response, and
// ships what this needs maintained in one place: HTML templates that escape by default,
// secure headers (CSP), cookies, SSE and body limits.

export interface ConsoleOptions {
  /** HOST:PORT (default 127.0.0.1:7010; port 0 picks a free one) */
  listen?: string;
  /** loopback-only single-user mode: everyone who opens the printed login link is this identity */
  devUser?: string;
  devRoles?: Role[];
  home?: string;
  /** environment the review functions check (inside-a-sandbox refusal) and the org policy's location */
  env?: NodeJS.ProcessEnv;
  /** where browsers reach the console, when behind a proxy (OIDC redirect URI base); default: the listen address */
  publicUrl?: string;
}

export interface ConsoleServer {
  url: string;
  loginUrl: string | null;
  close(): Promise<void>;
}

export interface ConsoleDeps {
  store: AuditStore;
  home: string;
  env: NodeJS.ProcessEnv;
  /** aborted when the server closes: live streams end with it */
  closing: AbortSignal;
  /** changes other hosts shipped to the shared store (its one LISTEN connection) */
  shared: SharedChanges;
  record(
    c: Context<ConsoleEnv>,
    action: string,
    o: {
      session?: string | null;
      target?: unknown;
      outcome?: string;
      severity?: Severity;
      decision?: 'allow' | 'deny';
    },
  ): void;
  need(c: Context<ConsoleEnv>, what: Permission): void;
}

export type ConsoleEnv = { Variables: { login: LoginSession; page: PageContext } };

const COOKIE = 'airlock_console';
const STATIC_DIR = new URL('./static/', import.meta.url);

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    throw new AirlockError(
      'USAGE',
      `--listen must be HOST:PORT (e.g. 127.0.0.1:7010), got ${JSON.stringify(text)}`,
      'use [::1]:PORT for an IPv6 address; port 0 picks a free one',
    );
  return { host: (m[1] ?? m[2])!, port };
}

/** HTTP status for a refused request: what the user did (4xx), never a stack. */
function statusOf(e: AirlockError): 400 | 403 | 404 | 409 | 413 | 503 {
  switch (e.kind) {
    case 'NOT_FOUND':
      return 404;
    case 'DENIED':
      return 403;
    case 'BAD_STATE':
    case 'TAMPERED':
      return 409;
    case 'TOO_LARGE':
      return 413;
    case 'CANNOT_RECORD':
    case 'UNAVAILABLE':
      return 503;
    default:
      return 400;
  }
}

function staticFile(name: string, type: string): { body: string; type: string } {
  return { body: readFileSync(new URL(name, STATIC_DIR), 'utf8'), type };
}

export async function startConsole(options: ConsoleOptions = {}): Promise<ConsoleServer> {
  const { host, port } = parseListen(options.listen ?? '127.0.0.1:7010');
  const loopback = isLoopbackHost(host);
  const env = options.env ?? process.env;
  if (options.publicUrl !== undefined && !/^https?:\/\/[^/?#\s]+\/?$/.test(options.publicUrl)) {
    throw new AirlockError(
      'USAGE',
      `--public-url must be an http(s) origin such as https://airlock.example.com, got ${JSON.stringify(options.publicUrl)}`,
      'give the scheme and host (and port) browsers use, without a path',
    );
  }
  const login = loginMethod(options, loopback, env);
  const home = options.home ?? airlockHome(env);
  const store = new AuditStore(ensureHome(home).auditDb);
  const closing = new AbortController();
  const shared = sharedChanges(sharedStoreUrl({ env }));
  const { app, deps } = buildApp({
    store,
    home,
    env,
    closing: closing.signal,
    shared,
    logins: new Logins(),
    login,
    secure: !loopback || options.publicUrl?.startsWith('https:') === true,
  });
  const server = await listen(app, host, port).catch(async (e: unknown) => {
    await shared.close();
    store.close();
    throw e;
  });
  const addr = server.address() as AddressInfo;
  const hostPort = `${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
  const origin = `http://${hostPort}`;
  deps.allowedHosts.add(hostPort).add(`localhost:${addr.port}`);
  if (options.publicUrl) deps.allowedHosts.add(new URL(options.publicUrl).host);
  if (login.kind === 'oidc') login.setup.publicUrl = options.publicUrl ?? origin;
  store.append({
    type: 'console.start',
    severity: 'info',
    decision: 'allow',
    rule: `console.${login.kind}`,
    data: {
      listen: origin,
      login: login.kind,
      devUser: login.kind === 'dev-user' ? login.user.identity : null,
      roles: login.kind === 'dev-user' ? login.user.roles : null,
    },
  });
  return {
    url: origin,
    loginUrl:
      login.kind === 'dev-user' ? `${origin}/login?token=${login.token}` : `${options.publicUrl ?? origin}/login`,
    close: async () => {
      closing.abort();
      await new Promise<void>((res) => {
        server.close(() => res());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await shared.close();
      store.append({ type: 'console.stop', severity: 'info', rule: `console.${login.kind}`, data: { listen: origin } });
      store.close();
    },
  };
}

function listen(app: Hono<ConsoleEnv>, hostname: string, port: number): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname, port }, () => resolve(server));
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new AirlockError(
          'UNAVAILABLE',
          `cannot listen on ${hostname}:${port}: ${e.code ?? e.message}`,
          'pick another --listen port, or stop what holds it',
        ),
      ),
    );
  });
}

type LoginMethod =
  | { kind: 'dev-user'; token: string; user: ConsoleUser }
  | { kind: 'oidc'; setup: Omit<OidcSetup, 'logins' | 'secure' | 'sessionCookie'> };

/** --dev-user (loopback only, a printed secret) or OIDC from the org policy; nothing else logs anyone in. */
function loginMethod(o: ConsoleOptions, loopback: boolean, env: NodeJS.ProcessEnv): LoginMethod {
  if (o.devUser !== undefined) {
    if (!loopback)
      throw new AirlockError(
        'USAGE',
        `--dev-user is refused on a non-loopback address (${parseListen(o.listen ?? '').host})`,
        'listen on 127.0.0.1 (or ::1) in dev-user mode; anyone who can reach the port would act as that user',
      );
    if (!/^[^\p{C}\s][^\p{C}]{0,199}$/u.test(o.devUser)) {
      throw new AirlockError(
        'USAGE',
        '--dev-user must be printable text of at most 200 characters',
        'pass your e-mail or user name, e.g. --dev-user you@example.com',
      );
    }
    return {
      kind: 'dev-user',
      token: token(),
      user: { identity: o.devUser, roles: o.devRoles?.length ? o.devRoles : ['admin'], via: 'dev-user' },
    };
  }
  const policy = orgPolicy(env).policy.console;
  checkOidcPolicy(policy);
  return { kind: 'oidc', setup: { policy, publicUrl: '', env } };
}

interface AppInput {
  store: AuditStore;
  home: string;
  env: NodeJS.ProcessEnv;
  closing: AbortSignal;
  shared: SharedChanges;
  logins: Logins;
  login: LoginMethod;
  secure: boolean;
}

/** How the console records what a user did (`record`) and refuses what their roles do not allow (`need`, recorded). */
function consoleRecorders(input: AppInput): {
  record: ConsoleDeps['record'];
  need: ConsoleDeps['need'];
  alreadyRecorded: WeakSet<Error>;
} {
  const alreadyRecorded = new WeakSet<Error>();
  const recorded = (e: AirlockError) => {
    alreadyRecorded.add(e);
    return e;
  };
  const record: ConsoleDeps['record'] = (c, action, r) => {
    const login = c.get('login') as LoginSession | undefined;
    input.store.append({
      type: `console.${action}`,
      session: r.session ?? null,
      severity: r.severity ?? 'info',
      decision: r.decision ?? 'allow',
      rule: `console.${action}`,
      data: {
        by: login?.user.identity ?? null,
        via: login?.user.via ?? null,
        roles: login?.user.roles ?? [],
        url: c.req.path,
        target: r.target ?? null,
        outcome: r.outcome ?? 'done',
        summary: `${login?.user.identity ?? 'anonymous'}: ${c.req.method} ${c.req.path}: ${r.outcome ?? 'done'}`,
      },
    });
  };
  const need: ConsoleDeps['need'] = (c, what) => {
    if (can(c.get('login').user, what)) return;
    record(c, 'denied', { severity: 'medium', decision: 'deny', outcome: `needs permission ${what}` });
    throw recorded(
      new AirlockError(
        'DENIED',
        `${c.get('login').user.identity} may not do this: it needs a role with "${what}" (your roles: ${c.get('login').user.roles.join(', ')})`,
        'ask an admin for the reviewer role',
      ),
    );
  };
  return { record, need, alreadyRecorded };
}

/** Security headers, the Host check, the body limit, and errors as pages (a refused POST recorded). */
function useSafetyLayers(
  app: Hono<ConsoleEnv>,
  input: AppInput,
  allowedHosts: Set<string>,
  record: ConsoleDeps['record'],
  alreadyRecorded: WeakSet<Error>,
): void {
  app.use(
    '*',
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
      strictTransportSecurity: input.secure ? 'max-age=31536000' : false,
      // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on form posts
      referrerPolicy: 'same-origin',
      xFrameOptions: 'DENY',
    }),
  );
  app.use('*', hostCheck(allowedHosts));
  app.use(
    '*',
    bodyLimit({
      maxSize: 64 * 1024,
      onError: (c) => c.html(errorPage('Request too large', 'the request body is over 64 KiB'), 413),
    }),
  );
  app.onError((e, c) => {
    // a refused state change is an action too: recorded with who tried and why it failed
    if (c.req.method === 'POST' && c.get('login') && !alreadyRecorded.has(e)) {
      try {
        record(c, 'refused', { severity: 'medium', decision: 'deny', outcome: e.message.slice(0, 500) });
      } catch {
        /* the response below still says it failed */
      }
    }
    if (isAirlockError(e))
      return c.html(errorPage(e.kind === 'DENIED' ? 'Forbidden' : 'Refused', e.message, e.hint), statusOf(e));
    process.stderr.write(`airlock console: ${e instanceof Error ? e.message : String(e)}\n`);
    return c.html(
      errorPage('Internal error', 'the console failed on this request; the server log has the reason'),
      500,
    );
  });
  app.notFound((c) => c.html(errorPage('Not found', `no page at ${c.req.path}`), 404));
}

function buildApp(input: AppInput): { app: Hono<ConsoleEnv>; deps: ConsoleDeps & { allowedHosts: Set<string> } } {
  const app = new Hono<ConsoleEnv>();
  const allowedHosts = new Set<string>();
  const { record, need, alreadyRecorded } = consoleRecorders(input);
  const deps = {
    store: input.store,
    home: input.home,
    env: input.env,
    closing: input.closing,
    shared: input.shared,
    record,
    need,
    allowedHosts,
  };

  useSafetyLayers(app, input, allowedHosts, record, alreadyRecorded);

  const js = staticFile('console.js', 'text/javascript; charset=utf-8');
  const css = staticFile('console.css', 'text/css; charset=utf-8');
  app.get('/static/console.js', (c) => c.body(js.body, 200, { 'content-type': js.type }));
  app.get('/static/console.css', (c) => c.body(css.body, 200, { 'content-type': css.type }));

  if (input.login.kind === 'oidc')
    registerOidcLogin(
      app,
      deps,
      Object.assign(input.login.setup, { logins: input.logins, secure: input.secure, sessionCookie: COOKIE }),
    );
  else registerDevLogin(app, input, record, input.login);

  app.use('*', async (c, next) => {
    const s = input.logins.get(getCookie(c, COOKIE));
    if (!s) {
      if (input.login.kind === 'oidc' && c.req.method === 'GET' && !c.req.path.startsWith('/stream'))
        return c.redirect('/login', 302);
      return c.html(
        errorPage(
          'Log in',
          'you are not logged in to this console',
          input.login.kind === 'oidc' ? 'log in at /login' : 'open the login link `airlock console` printed',
        ),
        401,
      );
    }
    c.set('login', s);
    c.set('page', { user: s.user, csrf: s.csrf });
    await next();
  });
  app.use('*', csrfCheck(deps));

  app.post('/logout', (c) => {
    record(c, 'logout', {});
    input.logins.close(c.get('login').id);
    deleteCookie(c, COOKIE, { path: '/' });
    return c.html(errorPage('Logged out', 'you are logged out'));
  });
  app.get('/', (c) => c.redirect('/proposals', 303));
  registerProposalPages(app, deps);
  registerApprovalPages(app, deps);
  registerSessionPages(app, deps);
  registerAuditPages(app, deps);
  registerPolicyPage(app, deps);
  registerStream(app, deps);
  return { app, deps };
}

/** --dev-user: the printed link's secret is the only way in; whoever opens it is that user. */
function registerDevLogin(
  app: Hono<ConsoleEnv>,
  i: AppInput,
  record: ConsoleDeps['record'],
  dev: Extract<LoginMethod, { kind: 'dev-user' }>,
): void {
  app.get('/login', (c) => {
    if (!sameSecret(c.req.query('token'), dev.token)) {
      i.store.append({
        type: 'console.login_refused',
        severity: 'medium',
        decision: 'deny',
        rule: 'console.dev-user',
        data: { summary: 'a login without the printed secret' },
      });
      return c.html(
        errorPage('Log in', 'this console runs in dev-user mode: open the login link `airlock console` printed'),
        401,
      );
    }
    const s = i.logins.open(dev.user);
    setCookie(c, COOKIE, s.id, { httpOnly: true, sameSite: 'Strict', path: '/', secure: i.secure });
    c.set('login', s);
    record(c, 'login', { outcome: 'logged in' });
    return c.redirect('/proposals', 303);
  });
}

/** DNS rebinding: a page on another name must not reach the loopback console with our cookie-less origin. */
function hostCheck(allowed: Set<string>): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    const host = c.req.header('host') ?? '';
    if (allowed.size && !allowed.has(host.toLowerCase()))
      return c.html(
        errorPage(
          'Refused',
          `unexpected Host header ${JSON.stringify(host.slice(0, 100))}`,
          'open the console by the address it printed',
        ),
        421,
      );
    await next();
  };
}

/** Every state change carries the login session's CSRF token (form field or header) and, when the browser sends one, our own Origin. */
function csrfCheck(deps: ConsoleDeps & { allowedHosts: Set<string> }): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    const origin = c.req.header('origin');
    const originOk =
      !origin || [...deps.allowedHosts].some((h) => origin === `http://${h}` || origin === `https://${h}`);
    let sent = c.req.header('x-csrf-token');
    if (!sent && /^application\/x-www-form-urlencoded|^multipart\/form-data/.test(c.req.header('content-type') ?? '')) {
      const v = (await c.req.parseBody())._csrf;
      sent = typeof v === 'string' ? v : undefined;
    }
    if (!originOk || !sameSecret(sent, c.get('login').csrf)) {
      deps.record(c, 'csrf_refused', {
        severity: 'high',
        decision: 'deny',
        outcome: !originOk ? 'foreign Origin' : sent ? 'wrong CSRF token' : 'missing CSRF token',
      });
      return c.html(
        errorPage('Forbidden', 'this request has no valid CSRF token', 'reload the page and submit the form again'),
        403,
      );
    }
    await next();
  };
}
