/**
 * JSON models of simlab's REST API, as `simlab/server/manager.py` writes them.
 */

/** Run states (simlab/state/states.py); `corrupt`: status.json unreadable. */
export const STATES = [
  'created',
  'queued',
  'running',
  'checkpointed',
  'completed',
  'failed',
  'cancelled',
  'corrupt'
] as const;
export type State = (typeof STATES)[number];

/** States that have ended (only a resume moves a failed or cancelled run on). */
export const FINAL_STATES: ReadonlyArray<State> = [
  'completed',
  'failed',
  'cancelled',
  'corrupt'
];

/** One progress report of a running code. */
export interface IProgress {
  step: number;
  steps: number | null;
  a: number;
  z: number;
  fraction: number;
  elapsed: number | null;
}

/** One run as `GET runs` and `GET runs/{id}` return it. */
export interface IRunModel {
  id: string;
  name: string;
  engine: string;
  state: State;
  project: string | null;
  sweep: string | null;
  tags: string[];
  path: string;
  created: string;
  updated: string;
  progress: IProgress | null;
  eta: number | null;
  /** Where `eta` comes from: the run's measured progress, or the cost model before it. */
  eta_source: 'progress' | 'model' | null;
  reason: string | null;
  cluster: string | null;
  /** ISO time of each state the run entered, e.g. `{created, running, failed}`. */
  times: Record<string, string>;
  /** What the engine advises about a valid config (only in the answer of a submit). */
  notes?: string[];
}

/** States a resume can continue from (POST runs/{id}/resume). */
export const RESUMABLE: ReadonlyArray<State> = ['checkpointed', 'failed', 'cancelled'];

/** One page of `GET runs`. */
export interface IRunPage {
  runs: IRunModel[];
  total: number;
  page: number;
  per_page: number;
  pages: number;
}

/** An engine with its health check (`GET codes`). */
export interface ICode {
  name: string;
  ok: boolean;
  version: string;
  message: string;
}

/** A worker of a started cluster. */
export interface IWorker {
  address: string;
  name: string;
  cores: number;
  memory: number;
  state: string;
}

/** A cluster a simlab dispatcher of this run root runs (on `host`). */
export interface ICluster {
  id: string;
  host: string;
  profile: string;
  code: string;
  kind: string;
  workers: IWorker[];
  cores: number;
  memory: number;
  dashboard: string | null;
}

/** `GET clusters`. */
export interface IClusters {
  profiles: { name: string; kind: string }[];
  clusters: ICluster[];
}

/** One run in the group space (`GET published`). */
export interface IPublished {
  id: string;
  name: string;
  engine: string;
  state: string;
  owner: string;
  published: string;
  path: string;
}
