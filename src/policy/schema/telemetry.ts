import { z } from 'zod';

// Placeholder: the telemetry section is filled in by its module's issue.
export const telemetrySchema = z.strictObject({}).describe('Telemetry settings.');
