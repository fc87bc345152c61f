/**
 * The "Simulations" sidebar: a runs section and a clusters section, refreshed
 * by a Poll that backs off on errors and stands by while the sidebar is hidden.
 */
import { Poll } from '@lumino/polling';
import { Panel, Widget } from '@lumino/widgets';

import { ClustersPanel } from './clusters';
import { h } from './format';
import { ICode, IClusters, IRunModel, IRunPage } from './models';
import { requestAPI } from './request';
import { IRunActions, RunsPanel } from './runs';

/** Refresh interval of the sidebar while visible, in ms. */
export const REFRESH_INTERVAL = 2000;

/** The left-area panel listing runs and clusters. */
export class SimlabSidebar extends Panel {
  constructor(options: SimlabSidebar.IOptions) {
    super();
    this.id = 'simlab-sidebar';
    this.addClass('simlab-Sidebar');
    this.title.caption = 'Simulations';
    const changed = () => void this.refresh();
    const actions: IRunActions = { ...options.actions, changed };
    this._error = h('div', { className: 'simlab-error' });
    this._error.hidden = true;
    const header = new Widget({
      node: h('header', { className: 'simlab-header' }, [
        h('h2', { text: 'Simulations' }),
        this._error
      ])
    });
    this.runs = new RunsPanel({ actions });
    this.clusters = new ClustersPanel({ changed });
    this.addWidget(header);
    this.addWidget(this.runs);
    this.addWidget(this.clusters);
    this._poll = new Poll({
      auto: true,
      factory: () => this._update(),
      frequency: { interval: options.interval ?? REFRESH_INTERVAL, backoff: true, max: 60_000 },
      name: 'simlab:sidebar',
      standby: () => (this.isHidden || !this.isAttached ? true : 'when-hidden')
    });
  }

  /** The runs section. */
  readonly runs: RunsPanel;
  /** The clusters section. */
  readonly clusters: ClustersPanel;

  /** Refresh now (after an action or a filter change). */
  async refresh(): Promise<void> {
    await this._poll.refresh();
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  private async _update(): Promise<void> {
    try {
      if (!this._codesLoaded) {
        const codes = await requestAPI<{ codes: ICode[] }>('codes');
        this.runs.setCodes(codes.codes);
        this._codesLoaded = true;
      }
      const [page, clusters] = await Promise.all([
        requestAPI<IRunPage>(`runs?${this.runs.query()}`),
        requestAPI<IClusters>('clusters')
      ]);
      this.runs.render(page);
      this.clusters.render(clusters);
      this._error.hidden = true;
    } catch (error) {
      this._error.textContent = `simlab API unavailable: ${(error as Error).message}`;
      this._error.hidden = false;
      throw error; // the Poll backs off
    }
  }

  private _poll: Poll;
  private _error: HTMLElement;
  private _codesLoaded = false;
}

/** The sidebar's options. */
export namespace SimlabSidebar {
  export interface IOptions {
    /** Open a run's log viewer or notebook. */
    actions: {
      openLog(run: IRunModel): void;
      openNotebook(run: IRunModel): void;
    };
    /** Refresh interval in ms (default REFRESH_INTERVAL). */
    interval?: number;
  }
}
