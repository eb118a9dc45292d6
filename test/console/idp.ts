import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

// A real OpenID provider for the console's login tests: oidc-provider 9 on 127.0.0.1
// (an ephemeral port), one confidential client for the console (a native-type client, so
// its loopback redirect URI may use any port, RFC 8252 §7.3), accounts with e-mail and
// groups claims, and the library's own login and consent pages.

export interface IdpAccount {
  email: string;
  email_verified?: boolean;
  groups: string[];
}
export interface Idp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  close: () => Promise<void>;
}

export async function startIdp(accounts: Record<string, IdpAccount>): Promise<Idp> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = 'airlock-console';
  const clientSecret = 'console-test-secret-0123456789abcdef';
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        application_type: 'native',
        redirect_uris: ['http://127.0.0.1/auth/callback'],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    scopes: ['openid', 'email', 'groups'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
    findAccount: (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: () => ({
        sub: id,
        ...(accounts[id]
          ? {
              email: accounts[id].email,
              email_verified: accounts[id].email_verified ?? true,
              groups: accounts[id].groups,
            }
          : {}),
      }),
    }),
    pkce: { required: () => true },
    cookies: { keys: ['idp-test-cookie-key-0123456789'] },
    features: { devInteractions: { enabled: true } },
  });
  server.on('request', provider.callback());
  return {
    issuer,
    clientId,
    clientSecret,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
