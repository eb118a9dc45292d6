// The review and security console: a web app over the same functions the CLI uses.
export { startConsole, parseListen, isLoopbackHost, type ConsoleOptions, type ConsoleServer } from './server.ts';
export { parseRoles, ROLES, type Role } from './auth.ts';
