/**
 * The clusters section of the sidebar: every cluster a simlab dispatcher of the
 * run root runs, whichever process (server, kernel, terminal) started its runs,
 * with its host, workers, cores and memory, a dashboard link opened in a Lab
 * tab (as dask-labextension does) and buttons to scale it.
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { formatBytes, h } from './format';
import { ICluster, IClusters } from './models';
import { errorMessage, requestAPI } from './request';

/** Lists clusters; `changed` is called after a scale request. */
export class ClustersPanel extends Widget {
  constructor(options: ClustersPanel.IOptions) {
    super();
    this.addClass('simlab-ClustersPanel');
    this._changed = options.changed;
    this._openDashboard = options.openDashboard;
  }

  /** Show the answer of `GET clusters`. */
  render(model: IClusters): void {
    const title = h('h3', { className: 'simlab-section-title', text: 'Clusters' });
    const nodes: Node[] = [title];
    if (model.clusters.length === 0) {
      const names = model.profiles.map(p => `${p.name} (${p.kind})`).join(', ');
      nodes.push(
        h('div', {
          className: 'simlab-empty',
          text: `No cluster running: one starts with the first run on a profile. Profiles: ${names || 'none'}.`
        })
      );
    }
    for (const cluster of model.clusters) {
      nodes.push(this._cluster(cluster));
    }
    this.node.replaceChildren(...nodes);
  }

  private _cluster(cluster: ICluster): HTMLElement {
    const n = cluster.workers.length;
    const down = h('button', { className: 'jp-mod-styled simlab-button simlab-scale-down', text: '−', title: 'One worker less' });
    const up = h('button', { className: 'jp-mod-styled simlab-button simlab-scale-up', text: '+', title: 'One worker more' });
    down.disabled = n === 0;
    down.addEventListener('click', () => void this._scale(cluster, n - 1));
    up.addEventListener('click', () => void this._scale(cluster, n + 1));
    const actions: HTMLElement[] = [down, up];
    if (cluster.dashboard) {
      const dashboard = h('button', {
        className: 'jp-mod-styled simlab-button simlab-dashboard',
        text: 'Dashboard',
        title: `Open the dask dashboard ${cluster.dashboard} in a Lab tab`
      });
      dashboard.addEventListener('click', () => this._openDashboard(cluster));
      actions.push(dashboard);
    }
    return h('div', { className: 'simlab-cluster', attrs: { 'data-cluster-id': cluster.id, 'data-profile': cluster.profile } }, [
      h('div', {
        className: 'simlab-cluster-name',
        text: `${cluster.profile} · ${cluster.code} (${cluster.kind})`,
        title: `${cluster.id} on ${cluster.host}`
      }),
      h('div', {
        className: 'simlab-cluster-details',
        text: `${cluster.host} · ${n} worker${n === 1 ? '' : 's'} · ${cluster.cores} cores · ${formatBytes(cluster.memory)}`
      }),
      h('div', { className: 'simlab-cluster-actions' }, actions)
    ]);
  }

  private async _scale(cluster: ICluster, workers: number): Promise<void> {
    try {
      await requestAPI(`clusters/${encodeURIComponent(cluster.id)}/scale`, {
        method: 'POST',
        body: JSON.stringify({ workers })
      });
    } catch (error) {
      await showErrorMessage('Scale failed', errorMessage(error));
    }
    this._changed();
  }

  private _changed: () => void;
  private _openDashboard: (cluster: ICluster) => void;
}

/** The ClustersPanel's options. */
export namespace ClustersPanel {
  export interface IOptions {
    /** Called after a scale request so the sidebar refreshes. */
    changed: () => void;
    /** Open a cluster's dask dashboard in the main area. */
    openDashboard: (cluster: ICluster) => void;
  }
}
