/**
 * The "Simulations" sidebar: a header with a refresh button, the "New run" form,
 * the runs (a queue manager), the clusters and the group's published runs,
 * refreshed by a Poll that backs off on errors and stands by while hidden.
 */
import { refreshIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { Panel, Widget } from '@lumino/widgets';

import { ClustersPanel } from './clusters';
import { h } from './format';
import { GroupPanel } from './group';
import { ICluster, ICode, IClusters, IPublished, IRunModel, IRunPage } from './models';
import { errorMessage, requestAPI } from './request';
import { IRunActions, RunsPanel } from './runs';
import { SubmitPanel } from './submit';

/** Refresh interval of the sidebar while visible, in ms. */
export const REFRESH_INTERVAL = 2000;

/** The left-area panel listing runs, clusters and published runs. */
export class SimlabSidebar extends Panel {
  constructor(options: SimlabSidebar.IOptions) {
    super();
    this.id = 'simlab-sidebar';
    this.addClass('simlab-Sidebar');
    this.title.caption = 'Simulations';
    const changed = () => void this.refresh();
    const actions: IRunActions = { ...options.actions, changed };
    this._error = h('div', { className: 'simlab-error', attrs: { role: 'alert' } });
    this._error.hidden = true;
    const refresh = h('button', {
      className: 'jp-mod-minimal jp-Button simlab-icon-button simlab-refresh',
      title: 'Refresh now',
      attrs: { 'aria-label': 'Refresh now' }
    });
    refresh.appendChild(refreshIcon.element({ tag: 'span', className: 'simlab-icon' }));
    refresh.addEventListener('click', changed);
    const header = new Widget({
      node: h('header', { className: 'simlab-header' }, [
        h('div', { className: 'simlab-header-row' }, [h('h2', { text: 'Simulations' }), refresh]),
        this._error
      ])
    });
    this.form = new SubmitPanel({ submitted: changed });
    this.runs = new RunsPanel({ actions });
    this.clusters = new ClustersPanel({ changed, openDashboard: options.actions.openDashboard });
    this.group = new GroupPanel();
    for (const widget of [header, this.form, this.runs, this.clusters, this.group]) {
      this.addWidget(widget);
    }
    this._poll = new Poll({
      auto: true,
      factory: () => this._update(),
      frequency: { interval: options.interval ?? REFRESH_INTERVAL, backoff: true, max: 60_000 },
      name: 'simlab:sidebar',
      standby: () => (this.isHidden || !this.isAttached ? true : 'when-hidden')
    });
  }

  /** The "New run" form. */
  readonly form: SubmitPanel;
  /** The runs section. */
  readonly runs: RunsPanel;
  /** The clusters section. */
  readonly clusters: ClustersPanel;
  /** The group's published runs. */
  readonly group: GroupPanel;

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
      const [page, clusters, published] = await Promise.all([
        requestAPI<IRunPage>(`runs?${this.runs.query()}`),
        requestAPI<IClusters>('clusters'),
        requestAPI<{ runs: IPublished[] }>('published')
      ]);
      if (!this._codes) {
        this._codes = (await requestAPI<{ codes: ICode[] }>('codes')).codes;
        this.runs.setCodes(this._codes);
        this.form.setChoices(this._codes, clusters);
      }
      this.runs.render(page);
      this.clusters.render(clusters);
      this.group.render(published.runs);
      this._error.hidden = true;
    } catch (error) {
      this._error.textContent = `simlab API unavailable: ${errorMessage(error)}`;
      this._error.hidden = false;
      throw error; // the Poll backs off
    }
  }

  private _poll: Poll;
  private _error: HTMLElement;
  private _codes: ICode[] | null = null;
}

/** The sidebar's options. */
export namespace SimlabSidebar {
  export interface IOptions {
    /** Open a run's log viewer or notebook, or a cluster's dashboard. */
    actions: {
      openLog(run: IRunModel): void;
      openNotebook(run: IRunModel): void;
      openDashboard(cluster: ICluster): void;
    };
    /** Refresh interval in ms (default REFRESH_INTERVAL). */
    interval?: number;
  }
}
