// Every host's work through one interface: what the CLI, the SDK and the console list and act on.
export {
  workView,
  inertSessionRow,
  type WorkView,
  type WorkViewOptions,
  type HostOf,
  type HostSession,
  type HostProposal,
  type HostAsk,
  type HostEvent,
  type HostEventFilter,
} from './view.ts';
