import { randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

// Who is logged in to the console, and what they may do. Login sessions live in the
// console server object (never module state); the cookie carries only a random id, the
// CSRF token is bound to that login session and compared in constant time.

export type Role = 'reviewer' | 'auditor' | 'admin';
export const ROLES: readonly Role[] = ['reviewer', 'auditor', 'admin'];

/** What a page or a button needs. Reading needs any role. */
export type Permission = 'read' | 'review' | 'answer' | 'respond';

// reviewers decide changes and asks; auditors (SOC analysts) read everything and may
// freeze or end a live session, never approve; admins may do all of it.
const GRANTS: Record<Role, readonly Permission[]> = {
  reviewer: ['read', 'review', 'answer'],
  auditor: ['read', 'respond'],
  admin: ['read', 'review', 'answer', 'respond'],
};

export interface ConsoleUser {
  identity: string;
  roles: Role[];
  via: 'dev-user' | 'oidc';
}

export interface LoginSession {
  id: string;
  user: ConsoleUser;
  csrf: string;
  expires: number;
}

export function can(user: ConsoleUser, what: Permission): boolean {
  return user.roles.some((r) => GRANTS[r].includes(what));
}

export function parseRoles(text: string): Role[] {
  const roles = text
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  const bad = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (bad.length || !roles.length)
    throw new Error(`unknown role ${JSON.stringify(bad[0] ?? text)} (roles: ${ROLES.join(', ')})`);
  return roles as Role[];
}

/** Roles from the org policy's console.roles: an entry is an e-mail (compared case-insensitively) or group:NAME. */
export function rolesFor(map: Record<Role, string[]>, email: string | null, groups: string[]): Role[] {
  const mail = email?.toLowerCase();
  const held = new Set(groups.map((g) => `group:${g}`));
  return ROLES.filter((r) => map[r].some((m) => (m.startsWith('group:') ? held.has(m) : m.toLowerCase() === mail)));
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || (isIP(host) === 4 && host.startsWith('127.'));
}

export const token = (): string => randomBytes(32).toString('base64url');

export function sameSecret(a: string | undefined, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const LOGIN_LIFETIME_MS = 12 * 3600_000;
const MAX_LOGINS = 1000;

/** The console's login sessions (one instance per server). */
export class Logins {
  readonly #byId = new Map<string, LoginSession>();

  open(user: ConsoleUser): LoginSession {
    this.#prune();
    const s: LoginSession = { id: token(), user, csrf: token(), expires: Date.now() + LOGIN_LIFETIME_MS };
    this.#byId.set(s.id, s);
    return s;
  }

  get(id: string | undefined): LoginSession | null {
    if (!id) return null;
    const s = this.#byId.get(id);
    if (!s || s.expires <= Date.now()) {
      if (s) this.#byId.delete(id);
      return null;
    }
    return s;
  }

  close(id: string): void {
    this.#byId.delete(id);
  }

  #prune(): void {
    const now = Date.now();
    for (const [id, s] of this.#byId) if (s.expires <= now) this.#byId.delete(id);
    // bounded: the oldest logins go first when a client floods the login endpoint
    while (this.#byId.size >= MAX_LOGINS) this.#byId.delete(this.#byId.keys().next().value!);
  }
}
