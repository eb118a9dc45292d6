// One-letter names are fine for a callback's argument or a loop counter read on the next
// line; a reader who meets `r` thirty lines after it was bound has to scroll back to learn
// what it is. This ESLint rule flags a one-letter variable or parameter whose uses reach
// more than `maxLines` lines below its declaration. (ESLint's id-length cannot see how far
// a name lives: it would flag 2,251 names here, most of them a callback's `(e) =>`.)
import type { ESLint, Rule, Scope } from 'eslint';

const longLivedNames: Rule.RuleModule = {
  meta: {
    type: 'suggestion',
    docs: { description: 'one-letter names only for short-lived variables' },
    schema: [
      { type: 'object', properties: { maxLines: { type: 'integer', minimum: 1 } }, additionalProperties: false },
    ],
    messages: {
      tooLong:
        "'{{name}}' is used {{span}} lines after its declaration: give it a name that says what it holds (one letter is for up to {{max}} lines)",
    },
  },
  create(context) {
    const max = (context.options[0] as { maxLines?: number } | undefined)?.maxLines ?? 20;
    const check = (scope: Scope.Scope): void => {
      for (const variable of scope.variables) {
        if (variable.name.length !== 1 || variable.name === '_') continue;
        if (variable.defs[0]?.type === 'ImportBinding') continue; // a library's own name (zod's z)
        const declared = variable.identifiers[0];
        if (!declared?.loc) continue;
        const uses = variable.references.map((ref) => ref.identifier.loc?.end.line ?? 0);
        const span = Math.max(declared.loc.end.line, ...uses) - declared.loc.start.line;
        if (span > max)
          context.report({
            node: declared,
            messageId: 'tooLong',
            data: { name: variable.name, span: String(span), max: String(max) },
          });
      }
      for (const child of scope.childScopes) check(child);
    };
    return {
      'Program:exit'(node) {
        check(context.sourceCode.getScope(node));
      },
    };
  },
};

const plugin: ESLint.Plugin = { rules: { 'long-lived-names': longLivedNames } };
export default plugin;
