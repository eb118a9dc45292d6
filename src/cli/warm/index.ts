// Warm start (issue 16): a pre-loaded spare `airlock` process serves the next invocation.
export { serveAsSpare, type Load } from './spare.ts';
export { warmOn, warmOff, warmStatus, type WarmStatus } from './control.ts';
