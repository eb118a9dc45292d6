export { openHostRepo, openHostRepoAt, resolveCommit, readAtCommit, type HostRepo } from './repo.ts';
export { prepareSnapshot, type Snapshot, type SnapshotSanitizer } from './snapshot.ts';
export { captureWorkspace, initResultRepo, prepareResultRepo, type CaptureResult } from './capture.ts';
export { countTreePaths, DEFAULT_TREE_LIMITS, type TreeLimits } from './bounds.ts';
