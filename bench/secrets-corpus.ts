// Labelled corpus of synthetic secrets and look-alike non-secrets, generated from a seed.
// Nothing token-shaped is committed: every token is built here by concatenating a prefix
// with seeded random characters, and written to a temp dir at test/bench time.
//
//   node bench/secrets-corpus.ts [DIR]   writes the corpus (+ labels.json) to DIR
//                                        (default test/secrets/corpus/generated, git-ignored)
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Label {
  family: string;
  start: number;
  end: number;
}
export interface CorpusFile {
  path: string;
  content: string;
  secrets: Label[];
  lookalikes: string[];
}

export const DEFAULT_SEED = 0x5ec2e75;

const UP = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LO = 'abcdefghijklmnopqrstuvwxyz';
const DIG = '0123456789';
const B62 = UP + LO + DIG;
const B64 = B62 + '+/';
const B64URL = B62 + '-_';
const B32 = UP + '234567';
const HEX = '0123456789abcdef';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  r: () => number;
  constructor(seed: number) {
    this.r = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  str(alphabet: string, n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[this.int(alphabet.length)];
    return s;
  }
  /** Random string that has at least one of each of upper, lower and digit (real tokens do). */
  tok(alphabet: string, n: number): string {
    for (let i = 0; i < 50; i++) {
      const s = this.str(alphabet, n);
      if (/[A-Z]/.test(s) === /[A-Z]/.test(alphabet) && /[0-9]/.test(s) === /[0-9]/.test(alphabet)) return s;
    }
    return this.str(alphabet, n);
  }
  uuid(): string {
    const h = this.str(HEX, 32);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20)}`;
  }
  pw(): string {
    return this.tok(B62, 12 + this.int(10)) + this.pick(['', '-', '_', '9']) + this.tok(B62, 4);
  }
}

const wrap = (s: string, n: number, nl = '\n') => s.match(new RegExp(`.{1,${n}}`, 'g'))!.join(nl);
const b64url = (s: string) => Buffer.from(s).toString('base64url');

/** Secret generators by family: value, plus the contexts it is typically found in. */
type Ctx = (v: string, g: Gen) => { path: string; text: string };
interface Family {
  family: string;
  make: (g: Gen) => string;
  contexts: Ctx[];
}

const env =
  (name: string): Ctx =>
  (v) => ({ path: '.env.production', text: `# service config\nNODE_ENV=production\n${name}=${v}\nLOG_LEVEL=info\n` });
const yaml =
  (key: string): Ctx =>
  (v) => ({
    path: 'config/deploy.yaml',
    text: `service:\n  name: billing\n  replicas: 3\n  ${key}: "${v}"\n  region: eu-west-1\n`,
  });
const json =
  (key: string): Ctx =>
  (v) => ({ path: 'settings.json', text: `{\n  "name": "billing",\n  "${key}": "${v}",\n  "retries": 3\n}\n` });
const py =
  (name: string): Ctx =>
  (v) => ({ path: 'app/settings.py', text: `import os\n\nDEBUG = False\n${name} = "${v}"\nALLOWED_HOSTS = ["*"]\n` });
const js =
  (name: string): Ctx =>
  (v) => ({
    path: 'src/client.js',
    text: `import { Client } from './lib.js';\n\nconst ${name} = '${v}';\nexport const client = new Client({ key: ${name} });\n`,
  });
const log = (): Ctx => (v) => ({
  path: 'logs/debug.log',
  text: `2026-11-02T10:00:01Z INFO starting worker\n2026-11-02T10:00:02Z DEBUG using credential ${v} for upload\n2026-11-02T10:00:03Z INFO done\n`,
});
const sh =
  (name: string): Ctx =>
  (v) => ({ path: 'scripts/deploy.sh', text: `#!/bin/sh\nset -eu\nexport ${name}=${v}\n./deploy --env prod\n` });
const md = (): Ctx => (v) => ({
  path: 'docs/setup.md',
  text: `# Setup\n\nRun the installer, then paste this into your shell:\n\n    ${v}\n\nand restart.\n`,
});

function pem(kind: string, body: string): string {
  const k = kind ? `${kind} ` : '';
  return `-----BEGIN ${k}PRIVATE KEY-----\n${wrap(body, 64)}\n-----END ${k}PRIVATE KEY-----`;
}
const pemFile =
  (path: string): Ctx =>
  (v) => ({ path, text: `${v}\n` });
const pemInCode = (): Ctx => (v) => ({ path: 'test/fixtures.ts', text: `export const KEY = \`${v}\`;\n` });

export const FAMILIES: Family[] = [
  {
    family: 'aws-access-key-id',
    make: (g) => 'AK' + 'IA' + g.str(B32, 16),
    contexts: [
      env('AWS_ACCESS_KEY_ID'),
      (v) => ({ path: '.aws/credentials.bak', text: `[default]\naws_access_key_id = ${v}\nregion = us-east-1\n` }),
      log(),
      js('accessKeyId'),
    ],
  },
  {
    family: 'aws-secret-access-key',
    make: (g) => g.tok(B64, 40),
    contexts: [
      env('AWS_SECRET_ACCESS_KEY'),
      (v) => ({ path: 'ci/creds.ini', text: `[default]\naws_secret_access_key = ${v}\n` }),
      json('SecretAccessKey'),
      py('aws_secret_key'),
    ],
  },
  {
    family: 'gcp-api-key',
    make: (g) => 'AI' + 'za' + g.tok(B64URL, 35),
    contexts: [js('mapsApiKey'), yaml('google_api_key'), md()],
  },
  {
    family: 'gcp-service-account',
    make: (g) => pem('', 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC' + g.str(B64, 1590) + '=='),
    contexts: [
      (v, g) => {
        const text = JSON.stringify(
          {
            type: 'service_account',
            project_id: 'billing-prod',
            private_key_id: g.str(HEX, 40),
            private_key: v + '\n',
            client_email: 'ci@billing-prod.iam.gserviceaccount.com',
            client_id: g.str(DIG, 21),
          },
          null,
          2,
        );
        return { path: 'gcp/ci-sa.json', text };
      },
    ],
  },
  {
    family: 'azure-storage-key',
    make: (g) => g.tok(B64, 86) + '==',
    contexts: [
      (v) => ({
        path: 'appsettings.json',
        text: `{\n  "Storage": "DefaultEndpointsProtocol=https;AccountName=billingprod;AccountKey=${v};EndpointSuffix=core.windows.net"\n}\n`,
      }),
      (v) => ({
        path: '.env',
        text: `AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=${v};EndpointSuffix=core.windows.net"\n`,
      }),
      env('AZURE_STORAGE_KEY'),
    ],
  },
  {
    family: 'azure-client-secret',
    make: (g) => g.str(B62, 3) + g.str(DIG, 1) + 'Q~' + g.tok(B62 + '_~.-', 34),
    contexts: [env('AZURE_CLIENT_SECRET'), yaml('clientSecret'), log()],
  },
  {
    family: 'github-token',
    make: (g) => g.pick(['gh' + 'p_', 'gh' + 'o_', 'gh' + 's_']) + g.tok(B62, 36),
    contexts: [
      env('GITHUB_TOKEN'),
      sh('GH_TOKEN'),
      (v) => ({
        path: '.git-config-backup',
        text: `[remote "origin"]\n\turl = https://x-access-token:${v}@github.com/acme/app.git\n`,
      }),
      log(),
    ],
  },
  {
    family: 'github-fine-grained-pat',
    make: (g) => 'github' + '_pat_' + g.tok(B62, 22) + '_' + g.tok(B62, 59),
    contexts: [env('GH_PAT'), md()],
  },
  {
    family: 'gitlab-token',
    make: (g) => 'gl' + 'pat-' + g.tok(B62 + '_-', 20),
    contexts: [env('GITLAB_TOKEN'), sh('CI_JOB_TOKEN_OVERRIDE')],
  },
  {
    family: 'slack-token',
    make: (g) => 'xo' + 'xb-' + g.str(DIG, 11) + '-' + g.str(DIG, 13) + '-' + g.tok(B62, 24),
    contexts: [env('SLACK_BOT_TOKEN'), py('SLACK_TOKEN')],
  },
  {
    family: 'slack-webhook',
    make: (g) =>
      'https://hooks.slack' +
      '.com/services/T' +
      g.str(UP + DIG, 10) +
      '/B' +
      g.str(UP + DIG, 10) +
      '/' +
      g.tok(B62, 24),
    contexts: [env('SLACK_WEBHOOK'), json('webhook')],
  },
  {
    family: 'stripe-secret-key',
    make: (g) => 'sk' + '_live_' + g.tok(B62, g.pick([24, 99])),
    contexts: [env('STRIPE_SECRET_KEY'), js('stripeKey'), log()],
  },
  {
    family: 'npm-token',
    make: (g) => 'np' + 'm_' + g.tok(B62, 36),
    contexts: [
      (v) => ({
        path: '.npmrc.ci',
        text: `registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=${v}\n`,
      }),
      env('NPM_TOKEN'),
    ],
  },
  {
    family: 'openai-api-key',
    make: (g) =>
      g.pick([
        () => 'sk-' + 'proj-' + g.tok(B64URL, 74) + 'T3Blbk' + 'FJ' + g.tok(B64URL, 74),
        () => 'sk-' + 'proj-' + g.tok(B64URL, 58) + 'T3Blbk' + 'FJ' + g.tok(B64URL, 58),
        () => 'sk-' + g.tok(B62, 20) + 'T3Blbk' + 'FJ' + g.tok(B62, 20),
      ])(),
    contexts: [env('OPENAI_API_KEY'), py('openai_api_key'), log()],
  },
  {
    family: 'anthropic-api-key',
    make: (g) => 'sk-' + 'ant-api03-' + g.tok(B64URL, 93) + 'AA',
    contexts: [env('ANTHROPIC_API_KEY'), js('anthropicKey'), log()],
  },
  {
    family: 'sendgrid-key',
    make: (g) => 'S' + 'G.' + g.tok(B64URL, 22) + '.' + g.tok(B64URL, 43),
    contexts: [env('SENDGRID_API_KEY')],
  },
  {
    family: 'private-key-rsa',
    make: (g) => pem('RSA', 'MIIEowIBAAKCAQEA' + g.str(B64, 1572)),
    contexts: [pemFile('deploy/server.key.txt'), pemInCode()],
  },
  {
    family: 'private-key-ec',
    make: (g) => pem('EC', 'MHcCAQEEI' + g.str(B64, 153) + '=='),
    contexts: [pemFile('certs/ec-signing.txt'), pemInCode()],
  },
  {
    family: 'private-key-openssh',
    make: (g) =>
      `-----BEGIN OPENSSH PRIVATE KEY-----\n${wrap('b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW' + g.str(B64, 330), 70)}\n-----END OPENSSH PRIVATE KEY-----`,
    contexts: [pemFile('keys/deploy_ed25519.txt'), md()],
  },
  {
    family: 'private-key-pkcs8-ed25519',
    make: (g) => pem('', 'MC4CAQAwBQYDK2VwBCIEI' + g.str(B64, 43)),
    contexts: [pemFile('keys/signing.txt'), pemInCode()],
  },
  {
    family: 'private-key-encrypted',
    make: (g) => pem('ENCRYPTED', 'MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI' + g.str(B64, 1200)),
    contexts: [pemFile('keys/legacy.txt')],
  },
  {
    family: 'database-url-password',
    make: (g) => g.pw(),
    contexts: [
      (v) => ({ path: '.env.local', text: `DATABASE_URL=postgres://app_user:${v}@db-prod.internal:5432/orders\n` }),
      (v) => ({ path: 'config/database.yml', text: `production:\n  url: mysql://shop:${v}@10.0.3.7:3306/shop\n` }),
      (v) => ({
        path: 'docker-compose.override.yml',
        text: `services:\n  api:\n    environment:\n      MONGO_URL: mongodb+srv://svc:${v}@cluster0.ab1cd.mongodb.net/app?retryWrites=true\n`,
      }),
      (v) => ({
        path: 'worker/config.py',
        text: `BROKER_URL = "amqp://worker:${v}@mq.internal:5672/jobs"\nCACHE_URL = "redis://cache.internal:6379/0"\n`,
      }),
      (v) => ({ path: 'cache.conf', text: `url = rediss://:${v}@cache.internal:6380/0\n` }),
    ],
  },
  {
    family: 'jwt',
    make: (g) =>
      b64url(JSON.stringify({ alg: g.pick(['HS256', 'RS256']), typ: 'JWT' })) +
      '.' +
      b64url(JSON.stringify({ sub: g.uuid(), role: 'admin', iat: 1790000000 + g.int(1e6), exp: 1800000000 })) +
      '.' +
      g.tok(B64URL, 43),
    contexts: [
      log(),
      (v) => ({ path: 'test/requests.http', text: `GET https://api.internal/v1/me\nX-Session: ${v}\n` }),
      json('id_token'),
    ],
  },
  {
    family: 'generic-assignment',
    make: (g) => g.tok(B62, 32 + g.int(16)),
    contexts: [py('API_KEY'), js('clientSecret'), yaml('auth_token'), json('api_secret'), sh('SERVICE_TOKEN')],
  },
  {
    family: 'generic-password',
    make: (g) => g.pw(),
    contexts: [yaml('password'), env('DB_PASSWORD'), json('adminPassword')],
  },
  {
    family: 'authorization-header',
    make: (g) => g.tok(B62 + '._-', 48),
    contexts: [
      (v) => ({
        path: 'scripts/call.sh',
        text: `curl -s -H "Authorization: Bearer ${v}" https://api.internal/v1/jobs\n`,
      }),
      (v) => ({
        path: 'logs/http.log',
        text: `2026-11-02T10:00:02Z DEBUG request headers {"accept":"application/json","authorization":"Bearer ${v}"}\n`,
      }),
    ],
  },
  // Families from issue 15 (missed on independently written data).
  {
    family: 'gcp-service-account-escaped-slash',
    make: (g) =>
      pem('', 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC' + g.str(B64, 1590) + '==')
        .replace(/\n/g, '\\n')
        .replace(/\//g, '\\/'),
    contexts: [
      (v, g) => ({
        path: 'gcp/service-account.json.bak',
        text: `{"type":"service_account","project_id":"billing-prod","private_key_id":"${g.str(HEX, 40)}","private_key":"${v}\\n","client_email":"ci@billing-prod.iam.gserviceaccount.com"}\n`,
      }),
    ],
  },
  {
    family: 'docker-config-auth',
    make: (g) => Buffer.from(`${g.pick(['ci', 'deploy', '_json_key', 'AWS'])}:${g.pw()}`).toString('base64'),
    contexts: [
      (v) => ({
        path: '.docker/config.json',
        text: `{\n  "auths": {\n    "registry.example.com": {\n      "auth": "${v}"\n    }\n  },\n  "credsStore": ""\n}\n`,
      }),
    ],
  },
  {
    family: 'k8s-dockerconfigjson',
    make: (g) =>
      Buffer.from(
        JSON.stringify({
          auths: {
            'ghcr.io': { username: 'ci', password: g.pw(), auth: Buffer.from(`ci:${g.pw()}`).toString('base64') },
          },
        }),
      ).toString('base64'),
    contexts: [
      (v) => ({
        path: 'k8s/pull-secret.yaml',
        text: `apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: ${v}\n`,
      }),
    ],
  },
  {
    family: 'cli-password',
    make: (g) => g.pw(),
    contexts: [
      (v) => ({
        path: 'scripts/backup.sh',
        text: `#!/bin/sh\nset -eu\nmysqldump -h db.internal -u backup -p${v} app > /backup/app.sql\n`,
      }),
      (v) => ({
        path: 'scripts/release.sh',
        text: `echo building\ndocker login -u ci -p '${v}' registry.example.com\ndocker push registry.example.com/app\n`,
      }),
      (v) => ({
        path: 'docs/api.md',
        text: `Call it:\n\n    curl -sS -X POST \\\n      -H 'Content-Type: application/json' \\\n      -u admin:${v} https://api.internal/v1/jobs\n`,
      }),
      (v) => ({ path: 'ops/deploy.sh', text: `sshpass -p "${v}" ssh deploy@web-1 'sudo systemctl restart app'\n` }),
      (v) => ({
        path: 'ops/fetch.sh',
        text: `wget --http-user=ci --http-password=${v} https://artifacts.internal/app.tgz\n`,
      }),
      (v) => ({ path: 'ops/http.sh', text: `http -a ci:${v} POST https://api.internal/v1/deploy\n` }),
    ],
  },
  {
    family: 'terraform-cloud-token',
    make: (g) => g.tok(B62, 14) + '.atlas' + 'v1.' + g.tok(B62, 67),
    contexts: [
      (v) => ({ path: 'logs/ci.log', text: `2026-11-02T10:00:02Z DEBUG remote backend ready with ${v}\n` }),
      (v) => ({ path: '.terraformrc', text: `credentials "app.terraform.io" {\n  token = "${v}"\n}\n` }),
    ],
  },
  {
    family: 'doppler-token',
    make: (g) => 'dp.' + g.pick(['pt', 'st.prd', 'sa', 'ct']) + '.' + g.tok(B62, 43),
    contexts: [env('DOPPLER_TOKEN'), log()],
  },
  {
    family: 'age-secret-key',
    make: (g) => 'AGE-SECRET-' + 'KEY-1' + g.str('QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L', 58),
    contexts: [
      (v) => ({ path: 'keys.txt', text: `# created: 2026-11-02T10:00:00Z\n# public key: age1${g0()}\n${v}\n` }),
    ],
  },
  {
    family: 'fernet-key',
    make: (g) => Buffer.from(g.str(B62, 32)).toString('base64url').slice(0, 43) + '=',
    contexts: [
      (v) => ({ path: 'app/crypto.py', text: `from cryptography.fernet import Fernet\n\nf = Fernet(b"${v}")\n` }),
      env('FERNET_KEY'),
    ],
  },
  {
    family: 'framework-secret-key',
    make: (g) => 'django-insecure-' + g.str(LO + DIG + '!@#$%^&*(-_=+)', 50),
    contexts: [
      (v) => ({
        path: 'app/settings.py',
        text: `import os\n\nDEBUG = False\nSECRET_KEY = '${v}'\nALLOWED_HOSTS = ["*"]\n`,
      }),
    ],
  },
  // Hard cases kept in on purpose: no key name, no prefix, or split in source. Neither
  // engine is expected to find them; they keep recall honest.
  {
    family: 'hard-bare-random-string',
    make: (g) => g.tok(B62, 40),
    contexts: [(v) => ({ path: 'logs/worker.log', text: `2026-11-02T10:00:02Z DEBUG upload ok ${v}\n` })],
  },
  {
    family: 'hard-split-literal',
    make: (g) => g.tok(B62, 20),
    contexts: [
      (v, g) => ({
        path: 'src/legacy.js',
        text: `const k = "${v}" + "${g.tok(B62, 20)}";\nfetch(url, { headers: { 'X-Api': k } });\n`,
      }),
    ],
  },
];

const g0 = () => 'qyzr9x8gf2tvdw0s3jn54khce6mua7lqpzry9x8gf2tvdw0s3jn54k';

/** Look-alikes: token-shaped strings that are not secrets. Any finding on them is a false positive. */
export const LOOKALIKES: { family: string; make: (g: Gen) => { path: string; text: string } }[] = [
  {
    family: 'uuid',
    make: (g) => ({
      path: 'data/users.json',
      text: JSON.stringify(
        { users: Array.from({ length: 5 }, () => ({ id: g.uuid(), request_id: g.uuid(), name: 'x' })) },
        null,
        2,
      ),
    }),
  },
  {
    family: 'git-sha',
    make: (g) => ({
      path: 'CHANGELOG.md',
      text:
        Array.from({ length: 6 }, () => `- ${g.str(HEX, 40)} fix: handle retries (#${g.int(999)})`).join('\n') +
        `\n\nMerge: ${g.str(HEX, 7)} ${g.str(HEX, 7)}\ncommit ${g.str(HEX, 40)}\n`,
    }),
  },
  {
    family: 'lockfile-integrity',
    make: (g) => ({
      path: 'package-lock.json',
      text: JSON.stringify(
        {
          name: 'app',
          lockfileVersion: 3,
          packages: Object.fromEntries(
            Array.from({ length: 6 }, (_, i) => [
              `node_modules/pkg${i}`,
              {
                version: '1.2.3',
                resolved: `https://registry.npmjs.org/pkg${i}/-/pkg${i}-1.2.3.tgz`,
                integrity: 'sha512-' + g.str(B64, 86) + '==',
              },
            ]),
          ),
        },
        null,
        2,
      ),
    }),
  },
  {
    family: 'yarn-lock-integrity',
    make: (g) => ({
      path: 'yarn.lock',
      text: Array.from(
        { length: 5 },
        (_, i) =>
          `"dep${i}@^2.0.0":\n  version "2.0.${i}"\n  resolved "https://registry.yarnpkg.com/dep${i}/-/dep${i}-2.0.${i}.tgz#${g.str(HEX, 40)}"\n  integrity sha512-${g.str(B64, 86)}==\n`,
      ).join('\n'),
    }),
  },
  {
    family: 'base64-image',
    make: (g) => ({
      path: 'web/icons.css',
      text: `.logo { background: url(data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA${g.str(B64, 3000)}=); }\n.font { src: url(data:font/woff2;base64,d09GMgABAAAAA${g.str(B64, 2000)}) }\n`,
    }),
  },
  {
    family: 'documented-example-keys',
    make: () => ({
      path: 'docs/aws.md',
      text: `Example:\n\n    aws_access_key_id = AKIA${'IOSFODNN7'}EXAMPLE\n    aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY${'EXAMPLEKEY'}\n    AWS_ACCESS_KEY_ID=AKIAI44QH8DHB${'EXAMPLE'}\n`,
    }),
  },
  {
    family: 'documented-example-jwt',
    make: () => ({
      path: 'docs/auth.md',
      text: `Paste a token such as \`eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.${'SflKx'}wRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\` into the header.\n`,
    }),
  },
  {
    family: 'documented-example-azurite',
    make: () => ({
      path: 'docs/local-storage.md',
      text: `UseDevelopmentStorage: DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq${'/K1SZFPTOtr/KBHBeksoGMGw=='};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;\n`,
    }),
  },
  {
    family: 'documented-example-stripe',
    make: () => ({
      path: 'docs/payments.md',
      text: `Use the test key from Stripe's docs: \`sk_test_4eC39HqLy${'jWDarjtT1zdp7dc'}\`\n`,
    }),
  },
  {
    family: 'placeholders',
    make: () => ({
      path: '.env.example',
      text: `API_KEY=your_api_key_here\nDB_PASSWORD=\${DB_PASSWORD}\nDATABASE_URL=postgres://user:password@localhost:5432/mydb\nGITHUB_TOKEN=gh${'p_'}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nSECRET_KEY=<your-secret-key>\nSTRIPE_KEY=sk_live_...\nTOKEN=changeme\n`,
    }),
  },
  {
    family: 'placeholder-pem',
    make: () => ({
      path: 'docs/tls.md',
      text: `Put your key in server.key:\n\n-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n\nor\n\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC...\n-----END PRIVATE KEY-----\n`,
    }),
  },
  {
    family: 'public-keys',
    make: (g) => ({
      path: 'keys/public.txt',
      text: `-----BEGIN PUBLIC KEY-----\n${wrap('MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA' + g.str(B64, 348), 64)}\n-----END PUBLIC KEY-----\n-----BEGIN CERTIFICATE-----\n${wrap('MIIDdzCCAl+gAwIBAgIE' + g.str(B64, 1200), 64)}\n-----END CERTIFICATE-----\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${g.str(B64, 43)} dev@laptop\n`,
    }),
  },
  {
    family: 'hashes-and-digests',
    make: (g) => ({
      path: 'deploy/images.yaml',
      text: `image: nginx@sha256:${g.str(HEX, 64)}\nchecksum: ${g.str(HEX, 64)}\nsha1: ${g.str(HEX, 40)}\netag: "${g.str(HEX, 32)}"\nhash: "${g.str(B64, 43)}="\n`,
    }),
  },
  {
    family: 'code-references',
    make: () => ({
      path: 'src/auth.py',
      text: `import os, getpass\n\napi_key = os.environ["OPENAI_API_KEY"]\npassword = getpass.getpass("Password: ")\ntoken = get_token(user)\nsecret = settings.JWT_SECRET\nmax_tokens = 4096\ntokenizer = "cl100k_base"\npassword_reset_url = "https://example.com/account/reset"\ntoken_type = "Bearer"\nif token == expected_token:\n    pass\n`,
    }),
  },
  {
    family: 'code-references-js',
    make: () => ({
      path: 'src/auth.ts',
      text: `const token = await getToken(user);\nconst secret = process.env.JWT_SECRET;\nconst apiKey: string = config.apiKey;\nheaders.Authorization = \`Bearer \${token}\`;\nif (password !== confirmPassword) throw new Error('mismatch');\nexport const passwordMinLength = 12;\n`,
    }),
  },
  {
    family: 'k8s-and-ci-references',
    make: () => ({
      path: '.github/workflows/ci.yml',
      text: `env:\n  GITHUB_TOKEN: \${{ secrets.GITHUB_TOKEN }}\n  NPM_TOKEN: \${{ secrets.NPM_TOKEN }}\n---\nenv:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: db-credentials\n        key: password\nsecretName: tls-cert\n`,
    }),
  },
  {
    family: 'stripe-publishable',
    make: (g) => ({
      path: 'web/config.js',
      text: `export const STRIPE_PUBLISHABLE_KEY = 'pk' + '_live_${g.tok(B62, 24)}';\nexport const stripePk = "pk_live_${g.tok(B62, 24)}";\n`,
    }),
  },
  {
    family: 'random-identifiers',
    make: (g) => ({
      path: 'dist/app.min.js',
      text: `var a=${g.int(1e6)},b="${g.str(B62, 24)}",c={k:"${g.str(B62, 16)}"};function ${g.str(LO, 6)}(e){return e.${g.str(LO, 8)}}\n/* build ${g.str(HEX, 12)} */\n`,
    }),
  },
  // Look-alikes from issue 15: references, placeholders and dummies, and command lines whose flags are not passwords.
  {
    family: 'secret-references',
    make: () => ({
      path: 'deploy/values.yaml',
      text: `db:\n  password: \${{ secrets.DB_PASSWORD }}\n  api_key: vault:secret/data/billing#api_key\n  token: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/billing-token-AbCdEf"\n  client_secret: "{{resolve:secretsmanager:prod/billing:SecretString:client_secret}}"\n  signing_key: op://Billing/Stripe/signing-key\nstage('deploy') {\n  withCredentials([usernamePassword(credentialsId: 'b3e1c0de-4f2a-4c1b-9d7e-6a5f4e3d2c1b', usernameVariable: 'U', passwordVariable: 'P')]) {}\n}\nsecret_id: 7d9c0b8e-3f4a-4b2c-8d1e-5f6a7b8c9d0e\n`,
    }),
  },
  {
    family: 'placeholders-issue15',
    make: () => ({
      path: 'README.md',
      text:
        `export API_TOKEN=<your-token>\napi_key: your-api-key-here\nDB_PASSWORD=changeme\nSTRIPE_KEY=sk_live_` +
        'A'.repeat(24) +
        `\nGITHUB_TOKEN=ghp_` +
        'abcdefghijklmnopqrstuvwxyz0123456789' +
        `\nsecret = "1234567890123456"\naws_secret_access_key = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"\n`,
    }),
  },
  {
    family: 'test-dummy-passwords',
    make: () => ({
      path: 'test/fixtures/users.yaml',
      text: `users:\n  - name: alice\n    password: "password123"\n  - name: bob\n    password: hunter2\n  - name: root\n    password: "P@ssw0rd"\ndb_password = "testpass"\nspring.datasource.password=secret\n`,
    }),
  },
  {
    family: 'cli-not-passwords',
    make: () => ({
      path: 'scripts/run.sh',
      text: `docker run -p 8080:80 -u 1000 nginx\nssh -p 2222 deploy@host\nmysql -u root -p app\ncurl -u "$API_USER:$API_PASSWORD" https://api.internal\ncurl -u admin https://api.internal\nsshpass -p "$SSH_PASS" ssh host\nwget --password="\${WGET_PASSWORD}" https://x\n`,
    }),
  },
  {
    family: 'urls-without-credentials',
    make: () => ({
      path: 'README.md',
      text: `See https://example.com/docs and git@github.com:acme/app.git or ssh://git@host:22/repo.\nhttp://localhost:3000/api?token_type=bearer\nhttps://user@github.com/acme/app\npostgres://localhost:5432/app\n`,
    }),
  },
];

/** Plain source code with no secrets: filler for throughput and for precision. */
export function fillerSource(g: Gen, bytes: number): string {
  const lines: string[] = [];
  let n = 0;
  const names = ['user', 'order', 'invoice', 'account', 'session', 'request', 'payload', 'result', 'config', 'client'];
  for (let i = 0; n < bytes && i < 1e7; i++) {
    const a = g.pick(names),
      b = g.pick(names),
      k = g.int(1000);
    const line = g.pick([
      `export function handle${a[0]!.toUpperCase()}${a.slice(1)}${k}(${a}: ${b[0]!.toUpperCase()}${b.slice(1)}): Promise<void> {`,
      `  const ${a}${k} = await db.query('SELECT * FROM ${b}s WHERE id = $1', [${b}.id]);`,
      `  if (!${a}) throw new Error('missing ${a} for ${b} ' + ${b}.id);`,
      `  // see https://docs.example.com/${a}/${b}#section-${k}`,
      `  log.info({ ${a}Id: ${a}.id, count: ${k} }, '${b} processed');`,
      `  return ${a}.items.map((x) => x.${b}Id).filter(Boolean);`,
      `}`,
      ``,
      `import { ${a}Service } from '../${b}/service.js';`,
      `const DEFAULT_${a.toUpperCase()}_TIMEOUT_MS = ${k * 10};`,
    ]);
    lines.push(line);
    n += line.length + 1;
  }
  return lines.join('\n') + '\n';
}

export function generateCorpus(seed = DEFAULT_SEED, variants = 3): CorpusFile[] {
  const g = new Gen(seed);
  const files: CorpusFile[] = [];
  let id = 0;
  for (const fam of FAMILIES) {
    for (const ctx of fam.contexts) {
      for (let v = 0; v < variants; v++) {
        const value = fam.make(g);
        const { path, text } = ctx(value, g);
        const escaped = path.endsWith('.json') ? JSON.stringify(value).slice(1, -1) : value;
        const start = text.indexOf(escaped);
        if (start < 0) throw new Error(`corpus bug: ${fam.family} value not in its context`);
        files.push({
          path: `pos/${String(id++).padStart(4, '0')}-${fam.family}/${path}`,
          content: text,
          secrets: [{ family: fam.family, start, end: start + escaped.length }],
          lookalikes: [],
        });
      }
    }
  }
  for (const la of LOOKALIKES) {
    for (let v = 0; v < variants; v++) {
      const { path, text } = la.make(g);
      files.push({
        path: `neg/${String(id++).padStart(4, '0')}-${la.family}/${path}`,
        content: text,
        secrets: [],
        lookalikes: [la.family],
      });
    }
  }
  for (let i = 0; i < variants * 4; i++) {
    files.push({
      path: `neg/${String(id++).padStart(4, '0')}-source/src/module${i}.ts`,
      content: fillerSource(g, 8000),
      secrets: [],
      lookalikes: ['source-code'],
    });
  }
  return files;
}

/** Plain source files (no secrets) totalling about `bytes`, for throughput runs. */
export function fillerCorpus(seed: number, bytes: number): CorpusFile[] {
  const g = new Gen(seed);
  const out: CorpusFile[] = [];
  for (let n = 0, i = 0; n < bytes && i < 100_000; i++) {
    const content = fillerSource(g, 16_000);
    out.push({ path: `filler/m${i}.ts`, content, secrets: [], lookalikes: [] });
    n += content.length;
  }
  return out;
}

/** Writes the corpus and labels.json (labels hold offsets, not values). */
export function writeCorpus(dir: string, files = generateCorpus()): void {
  for (const f of files) {
    const p = join(dir, f.path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.content);
  }
  writeFileSync(
    join(dir, 'labels.json'),
    JSON.stringify(
      files.map((f) => ({ path: f.path, secrets: f.secrets, lookalikes: f.lookalikes })),
      null,
      1,
    ),
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir =
    process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'secrets', 'corpus', 'generated');
  writeCorpus(dir);
  process.stdout.write(`corpus written to ${dir}\n`);
}
