// The review and security console: a web app over the same functions the CLI uses.
export { startConsole, parseListen, type ConsoleOptions, type ConsoleServer } from './server.ts';
export { parseRoles, rolesFor, isLoopbackHost, ROLES, type Role } from './auth.ts';
