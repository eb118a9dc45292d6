import { channel } from 'node:diagnostics_channel';

// Where a command's time goes (bench/cold-start.ts subscribes): a named point in the
// start and stop paths, published only while someone listens, so it costs one property
// read otherwise and keeps nothing.
const phases = channel('airlock:phase');

export interface PhaseMark {
  name: string;
  at: number;
}

/** Marks that the phase `name` has just ended. */
export function phase(name: string): void {
  if (phases.hasSubscribers) phases.publish({ name, at: performance.now() } satisfies PhaseMark);
}
