import type { Command } from 'commander';
import { registerSession } from './session.ts';
import { registerPolicy } from './policy.ts';
import { registerApprovals } from './approvals.ts';
import { registerReview } from './review.ts';
import { registerSecrets } from './secrets.ts';
import { registerEgress } from './egress.ts';
import { registerAudit } from './audit.ts';
import { registerAgents } from './agents.ts';

// Each module's commands live in their own file and register here, one line each.
export type Register = (program: Command) => void;

export const registrations: Register[] = [];
registrations.push(registerPolicy);
registrations.push(registerSession);
registrations.push(registerSecrets);
registrations.push(registerApprovals);
registrations.push(registerEgress);
registrations.push(registerReview);
registrations.push(registerAudit);
registrations.push(registerAgents);
