import { z } from 'zod';

// Placeholder: the agents section is filled in by its module's issue.
export const agentsSchema = z.strictObject({}).describe('Agents settings.');
