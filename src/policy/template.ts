// What `airlock init` writes. Everything left commented is at its built-in default,
// which is the strictest sensible setting. Tested: the template must validate.
export const INIT_TEMPLATE = `# Airlock policy — see \`airlock policy schema\` and README.md#policy-reference.
# Sessions read this file from the BASE COMMIT, never from the agent's workspace:
# commit changes to it before they apply. An org policy (/etc/airlock/policy.yaml)
# can only be tightened here.
# yaml-language-server: $schema=https://airlock.dev/schema/policy-v1.json
version: 1

sandbox:
  limits:
    memoryMB: 2048      # whole sandbox
    pids: 256           # processes + threads
    wallSeconds: 3600   # the session ends after this
    diskMB: 2048        # everything the agent writes (workspace, /tmp, home)
  env:
    allow: []           # extra host variables to pass in (credential-like names are refused)
  # mounts:
  #   readOnly: [/opt/toolchains]
  traceProcesses: true  # record every process the agent starts

# egress:               # network: nothing is reachable unless granted here
#   presets: [npm]
#   allow:
#     - host: api.example.com
`;
