/**
 * The columns of the runs table: what each shows and how it sorts. Pure
 * functions of a run model and the current time, so sorting and display agree.
 */
import { formatDuration, formatWhen } from './format';
import { FINAL_STATES, IRunModel, STATES } from './models';

/** Keys of the sortable columns, in display order. */
export const COLUMN_KEYS = ['name', 'code', 'state', 'progress', 'created', 'elapsed', 'eta'] as const;
export type ColumnKey = (typeof COLUMN_KEYS)[number];

/** One column: header label, its cell text and its sort value. */
export interface IColumn {
  key: ColumnKey;
  label: string;
  /** What the header's tooltip explains. */
  caption: string;
  text(run: IRunModel, now: number): string;
  value(run: IRunModel, now: number): number | string;
}

/** Fraction done in [0, 1]; a completed run is done whatever it last reported. */
export function fraction(run: IRunModel): number {
  if (run.state === 'completed') {
    return 1;
  }
  return run.progress ? Math.max(0, Math.min(1, run.progress.fraction)) : 0;
}

function time(iso: string | undefined | null): number | null {
  const t = iso ? Date.parse(iso) : NaN;
  return isNaN(t) ? null : t;
}

/**
 * Seconds the run has been running: from its (last) start to its end, or to now
 * while it runs; null when it never ran.
 */
export function elapsed(run: IRunModel, now: number): number | null {
  const times = run.times ?? {};
  const start = time(times.running);
  if (start === null) {
    return null;
  }
  if (run.state === 'running') {
    return (now - start) / 1000;
  }
  const end = time(times[run.state]) ?? time(run.updated);
  return end !== null && end >= start ? (end - start) / 1000 : null;
}

/** States whose run has time left: the server's ETA rule (`service/eta.py`). */
const WAITING_OR_RUNNING: ReadonlyArray<string> = ['created', 'queued', 'running'];

/** Seconds left until the run ends: none once it has ended or stopped. */
export function eta(run: IRunModel): number | null {
  return WAITING_OR_RUNNING.includes(run.state) && run.eta !== null && run.eta !== undefined ? run.eta : null;
}

/**
 * The ETA cell: the time left measured from the run's progress, or `≈` the cost
 * model's estimate before the run has reported enough progress (as `simlab
 * status` and the monitor widget say "cost model").
 */
export function etaText(run: IRunModel): string {
  const left = eta(run);
  if (left === null) {
    return '';
  }
  return run.eta_source === 'model' ? `≈ ${formatDuration(left)}` : formatDuration(left);
}

/** The table's columns. */
export const COLUMNS: IColumn[] = [
  {
    key: 'name',
    label: 'Name',
    caption: 'Run name (hover a name for its id)',
    text: run => run.name,
    value: run => run.name.toLowerCase()
  },
  {
    key: 'code',
    label: 'Code',
    caption: 'Simulation code',
    text: run => run.engine,
    value: run => run.engine
  },
  {
    key: 'state',
    label: 'State',
    caption: 'Run state',
    text: run => run.state,
    value: run => STATES.indexOf(run.state)
  },
  {
    key: 'progress',
    label: '%',
    caption: 'Progress in per cent',
    text: run => `${Math.round(100 * fraction(run))}%`,
    value: run => fraction(run)
  },
  {
    key: 'created',
    label: 'Created',
    caption: 'When the run was created',
    text: run => formatWhen(run.times?.created ?? run.created),
    value: run => time(run.times?.created ?? run.created) ?? 0
  },
  {
    key: 'elapsed',
    label: 'Elapsed',
    caption: 'Time spent running',
    text: (run, now) => formatDuration(elapsed(run, now)),
    value: (run, now) => elapsed(run, now) ?? -1
  },
  {
    key: 'eta',
    label: 'ETA',
    caption: 'Time left; ≈ marks the cost model\'s estimate, before the run\'s progress is measured',
    text: run => etaText(run),
    value: run => eta(run) ?? Number.MAX_VALUE
  }
];

/** Sort runs by a column (stable; ties keep the server's newest-first order). */
export function sortRuns(
  runs: IRunModel[],
  key: ColumnKey,
  descending: boolean,
  now: number
): IRunModel[] {
  const column = COLUMNS.find(c => c.key === key)!;
  const sign = descending ? -1 : 1;
  return runs
    .map((run, index) => ({ run, index, value: column.value(run, now) }))
    .sort((a, b) => {
      if (a.value < b.value) {
        return -sign;
      }
      if (a.value > b.value) {
        return sign;
      }
      return a.index - b.index;
    })
    .map(entry => entry.run);
}

/** Whether a run has ended (nothing happens to it unless resumed). */
export function isFinal(run: IRunModel): boolean {
  return FINAL_STATES.includes(run.state);
}
