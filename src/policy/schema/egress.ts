import { z } from 'zod';

// Placeholder: the egress section is filled in by its module's issue.
export const egressSchema = z.strictObject({}).describe('Egress settings.');
