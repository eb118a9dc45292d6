import { z } from 'zod';

// Placeholder: the secrets section is filled in by its module's issue.
export const secretsSchema = z.strictObject({}).describe('Secrets settings.');
