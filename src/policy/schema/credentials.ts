import { z } from 'zod';

// Placeholder: the credentials section is filled in by its module's issue.
export const credentialsSchema = z.strictObject({}).describe('Credentials settings.');
