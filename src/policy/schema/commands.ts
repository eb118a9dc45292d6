import { z } from 'zod';

// Placeholder: the commands section is filled in by its module's issue.
export const commandsSchema = z.strictObject({}).describe('Commands settings.');
