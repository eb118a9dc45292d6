import { z } from 'zod';

// Placeholder: the review section is filled in by its module's issue.
export const reviewSchema = z.strictObject({}).describe('Review settings.');
