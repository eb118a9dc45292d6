// The review and security console: a web app over the same functions the CLI uses.
export { startConsole, type ConsoleOptions, type ConsoleServer } from './server.ts';
export { parseRoles, type Role } from './auth.ts';
