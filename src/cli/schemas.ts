// A CLI process parses each schema (policy, agent profiles) about once: zod's JIT (a
// `new Function` per object schema on its first parse) then costs more than it saves,
// ~12 ms per schema here. Called by the commands that open sessions, after they load
// the policy engine anyway (the other commands must not load zod for it); the SDK leaves
// its caller's zod as it is.
export async function preferInterpretedSchemas(): Promise<void> {
  (await import('zod')).z.config({ jitless: true });
}
