import { createRequire } from 'node:module';
import { Parser, Language } from 'web-tree-sitter';

// Real parsers (tree-sitter, wasm builds shipped inside the grammar packages) for the
// shell (command rules) and for JavaScript/TypeScript/Python (review injection check).
// Loaded once per process; parsing afterwards is synchronous.

const require = createRequire(import.meta.url);
let init: Promise<void> | undefined;
const cache = new Map<string, Promise<Language>>();

export type Grammar = 'bash' | 'javascript' | 'typescript' | 'tsx' | 'python';
const FILES: Record<Grammar, string> = {
  bash: 'tree-sitter-bash/tree-sitter-bash.wasm',
  javascript: 'tree-sitter-javascript/tree-sitter-javascript.wasm',
  typescript: 'tree-sitter-typescript/tree-sitter-typescript.wasm',
  tsx: 'tree-sitter-typescript/tree-sitter-tsx.wasm',
  python: 'tree-sitter-python/tree-sitter-python.wasm',
};

export function loadGrammar(g: Grammar): Promise<Language> {
  init ??= Parser.init();
  let p = cache.get(g);
  if (!p) {
    p = init.then(() => Language.load(require.resolve(FILES[g])));
    cache.set(g, p);
  }
  return p;
}

export async function parserFor(g: Grammar): Promise<Parser> {
  const lang = await loadGrammar(g);
  const p = new Parser();
  p.setLanguage(lang);
  return p;
}
