import { readFileSync, statSync } from 'node:fs';
import { Octokit } from '@octokit/rest';
import { AirlockError } from '../common/index.ts';
import type { Policy } from '../policy/index.ts';

// Opening the pull/merge request after the branch is pushed: GitHub (Octokit), GitLab and
// Gitea/Forgejo (their REST APIs via fetch), or none. The token is read on the HOST from
// the env var or file the policy names, at apply time; it never enters a sandbox, an
// audit event or an error message.

export type Provider = Policy['review']['apply']['provider'];

export interface PullRequestInput {
  provider: Provider;
  apiUrl: string;
  repository: string;
  token: string;
  head: string;
  base: string;
  title: string;
  body: string;
  draft: boolean;
}

export interface PullRequestResult {
  url: string;
  number: number;
}

type Fetch = typeof fetch;

export function providerToken(apply: Policy['review']['apply'], env: NodeJS.ProcessEnv = process.env): string | null {
  if (apply.tokenEnv) {
    const v = env[apply.tokenEnv];
    if (v && v.trim()) return v.trim();
  }
  if (apply.tokenFile) {
    let st;
    try {
      st = statSync(apply.tokenFile);
    } catch {
      return null;
    }
    if ((st.mode & 0o077) !== 0)
      throw new AirlockError(
        'DENIED',
        `token file ${apply.tokenFile} is readable by other users`,
        `chmod 600 ${apply.tokenFile}`,
      );
    const v = readFileSync(apply.tokenFile, 'utf8').trim();
    return v || null;
  }
  return null;
}

/** owner/name (or a GitLab project path) from a remote URL. */
export function repositoryFromUrl(url: string): string {
  let path: string;
  const scp = /^[^@/]+@[^:/]+:(.+)$/.exec(url);
  if (scp) path = scp[1]!;
  else {
    try {
      path = new URL(url).pathname;
    } catch {
      path = url;
    }
  }
  return path
    .replace(/^\/+/, '')
    .replace(/\.git\/?$/, '')
    .replace(/\/+$/, '');
}

async function call(
  fetchImpl: Fetch,
  url: string,
  headers: Record<string, string>,
  body: unknown,
): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetchImpl(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'user-agent': 'airlock', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    throw new AirlockError(
      'UNAVAILABLE',
      `cannot reach ${new URL(url).origin}: ${e instanceof Error ? e.message : String(e)}`,
      'check review.apply.apiUrl and the network',
    );
  }
  const text = await res.text();
  if (!res.ok)
    throw new AirlockError(
      'UNAVAILABLE',
      `${new URL(url).origin} refused to open the request: HTTP ${res.status} ${text.slice(0, 200)}`,
      "check the token's permissions and review.apply.repository",
    );
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new AirlockError('UNAVAILABLE', `${new URL(url).origin} answered with non-JSON`, 'check review.apply.apiUrl');
  }
}

export async function openPullRequest(input: PullRequestInput, fetchImpl: Fetch = fetch): Promise<PullRequestResult> {
  const api = input.apiUrl.replace(/\/+$/, '');
  switch (input.provider) {
    case 'github': {
      const [owner, repo] = input.repository.split('/');
      if (!owner || !repo)
        throw new AirlockError(
          'POLICY_INVALID',
          `GitHub repository must be owner/name, got "${input.repository}"`,
          'set review.apply.repository',
        );
      const kit = new Octokit({
        auth: input.token,
        baseUrl: api || 'https://api.github.com',
        userAgent: 'airlock',
        request: { fetch: fetchImpl },
      });
      try {
        const r = await kit.rest.pulls.create({
          owner,
          repo,
          head: input.head,
          base: input.base,
          title: input.title,
          body: input.body,
          draft: input.draft,
        });
        return { url: r.data.html_url, number: r.data.number };
      } catch (e) {
        const status = (e as { status?: number }).status;
        throw new AirlockError(
          'UNAVAILABLE',
          `GitHub refused to open the pull request${status ? `: HTTP ${status}` : ''} (${e instanceof Error ? e.message.slice(0, 200) : String(e)})`,
          "check the token's permissions and review.apply.repository",
        );
      }
    }
    case 'gitlab': {
      if (!api)
        throw new AirlockError(
          'POLICY_INVALID',
          'GitLab needs review.apply.apiUrl (e.g. https://gitlab.example.com/api/v4)',
          'set it in the org policy',
        );
      const r = await call(
        fetchImpl,
        `${api}/projects/${encodeURIComponent(input.repository)}/merge_requests`,
        { 'PRIVATE-TOKEN': input.token },
        {
          source_branch: input.head,
          target_branch: input.base,
          title: input.draft ? `Draft: ${input.title}` : input.title,
          description: input.body,
          remove_source_branch: false,
        },
      );
      return { url: String(r.web_url ?? ''), number: Number(r.iid ?? 0) };
    }
    case 'gitea': {
      if (!api)
        throw new AirlockError(
          'POLICY_INVALID',
          'Gitea/Forgejo needs review.apply.apiUrl (e.g. https://git.example.com/api/v1)',
          'set it in the org policy',
        );
      const [owner, repo] = input.repository.split('/');
      if (!owner || !repo)
        throw new AirlockError(
          'POLICY_INVALID',
          `Gitea repository must be owner/name, got "${input.repository}"`,
          'set review.apply.repository',
        );
      const r = await call(
        fetchImpl,
        `${api}/repos/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}/pulls`,
        { authorization: `token ${input.token}` },
        {
          head: input.head,
          base: input.base,
          title: input.draft ? `WIP: ${input.title}` : input.title,
          body: input.body,
        },
      );
      return { url: String(r.html_url ?? ''), number: Number(r.number ?? 0) };
    }
    case 'none':
      return { url: '', number: 0 };
  }
}

/** HTTP user name that goes with a provider token for git over HTTPS. */
export function pushUser(p: Provider): string {
  return p === 'github' ? 'x-access-token' : p === 'gitlab' ? 'oauth2' : 'airlock';
}
