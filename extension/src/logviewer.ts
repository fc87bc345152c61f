/**
 * A main-area viewer that follows a run's log and status live through the
 * server-sent events of `GET runs/{id}/events`.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { h } from './format';
import { IRunModel } from './models';
import { apiUrl } from './request';

/** The log text, following new lines while scrolled to the bottom. */
export class LogContent extends Widget {
  constructor(runId: string) {
    super();
    this.addClass('simlab-LogViewer');
    this._status = h('div', { className: 'simlab-log-status', text: 'connecting…' });
    this._pre = h('pre', { className: 'simlab-log' });
    this.node.append(this._status, this._pre);
    const settings = ServerConnection.makeSettings();
    const params = new URLSearchParams();
    if (settings.token) {
      params.set('token', settings.token);
    }
    const url = apiUrl(`runs/${encodeURIComponent(runId)}/events`, settings);
    this._source = new EventSource(`${url}?${params.toString()}`, { withCredentials: true });
    this._source.addEventListener('log', event => {
      const data = JSON.parse((event as MessageEvent).data) as { text: string };
      const atBottom = this._pre.scrollTop + this._pre.clientHeight >= this._pre.scrollHeight - 4;
      this._pre.appendChild(document.createTextNode(data.text));
      if (atBottom) {
        this._pre.scrollTop = this._pre.scrollHeight;
      }
    });
    this._source.addEventListener('status', event => {
      const run = JSON.parse((event as MessageEvent).data) as IRunModel;
      const percent = run.progress ? ` · ${Math.round(100 * run.progress.fraction)}%` : '';
      this._status.textContent = `${run.state}${percent}`;
      this._status.dataset.state = run.state;
    });
    this._source.addEventListener('end', () => this._source.close());
    this._source.onerror = () => {
      if (this._source.readyState === EventSource.CLOSED) {
        this._status.textContent += ' (disconnected)';
      }
    };
  }

  dispose(): void {
    this._source.close();
    super.dispose();
  }

  private _status: HTMLElement;
  private _pre: HTMLPreElement;
  private _source: EventSource;
}

/** A closable main-area tab holding the log of one run. */
export function createLogViewer(run: { id: string; name: string }): MainAreaWidget<LogContent> {
  const widget = new MainAreaWidget({ content: new LogContent(run.id) });
  widget.id = `simlab-log-${run.id}`;
  widget.title.label = `Log: ${run.name}`;
  widget.title.caption = run.id;
  widget.title.closable = true;
  return widget;
}
