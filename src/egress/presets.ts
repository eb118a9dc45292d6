import type { EGRESS_PRESETS } from '../policy/index.ts';

// Named destination sets. HTTPS on 443 only: a preset never opens plain HTTP or another
// port. Upload endpoints that are not needed to install or to call a model API
// (uploads.github.com, gist.github.com) are deliberately absent.

export const PRESETS: Record<(typeof EGRESS_PRESETS)[number], string[]> = {
  npm: ['registry.npmjs.org', 'registry.yarnpkg.com'],
  pypi: ['pypi.org', 'files.pythonhosted.org'],
  github: [
    'github.com',
    'api.github.com',
    'codeload.github.com',
    'raw.githubusercontent.com',
    'objects.githubusercontent.com',
    'release-assets.githubusercontent.com',
  ],
  goproxy: ['proxy.golang.org', 'sum.golang.org', 'storage.googleapis.com'],
  crates: ['crates.io', 'index.crates.io', 'static.crates.io'],
  openai: ['api.openai.com'],
  anthropic: ['api.anthropic.com'],
  google: ['generativelanguage.googleapis.com'],
};
