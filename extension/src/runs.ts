/**
 * The runs section of the sidebar: filters, and a table of runs with state
 * badges, progress bars (a, z, %, ETA) and actions, grouped by sweep.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { formatDuration, h } from './format';
import { FINAL_STATES, ICode, IRunModel, IRunPage, STATES } from './models';
import { requestAPI } from './request';

/** What a row's buttons ask the sidebar to do. */
export interface IRunActions {
  openLog(run: IRunModel): void;
  openNotebook(run: IRunModel): void;
  changed(): void;
}

/** The filters and the table of runs. */
export class RunsPanel extends Widget {
  constructor(options: RunsPanel.IOptions) {
    super();
    this.addClass('simlab-RunsPanel');
    this._actions = options.actions;
    this._text = h('input', {
      className: 'jp-mod-styled simlab-filter',
      attrs: { type: 'search', placeholder: 'Filter by name', 'aria-label': 'Filter runs' }
    });
    this._state = this._select('simlab-state-select', 'All states', [...STATES]);
    this._code = this._select('simlab-code-select', 'All codes', []);
    this._summary = h('div', { className: 'simlab-summary' });
    this._table = h('div', { className: 'simlab-runs' });
    for (const input of [this._text, this._state, this._code]) {
      input.addEventListener('input', () => this._actions.changed());
    }
    this.node.append(
      h('div', { className: 'simlab-filters' }, [this._text, this._state, this._code]),
      this._summary,
      this._table
    );
  }

  /** The query string of the current filters. */
  query(): string {
    const params = new URLSearchParams({ per_page: '200' });
    if (this._text.value.trim()) {
      params.set('text', this._text.value.trim());
    }
    if (this._state.value) {
      params.set('state', this._state.value);
    }
    if (this._code.value) {
      params.set('code', this._code.value);
    }
    return params.toString();
  }

  /** Fill the code selector from `GET codes`. */
  setCodes(codes: ICode[]): void {
    const current = this._code.value;
    this._code.replaceChildren(h('option', { text: 'All codes', attrs: { value: '' } }));
    for (const code of codes) {
      const label = code.ok ? code.name : `${code.name} (unavailable)`;
      this._code.appendChild(
        h('option', { text: label, title: code.message, attrs: { value: code.name } })
      );
    }
    this._code.value = current;
  }

  /** Show one page of runs. */
  render(page: IRunPage): void {
    this._summary.textContent =
      page.total === page.runs.length
        ? `${page.total} run${page.total === 1 ? '' : 's'}`
        : `${page.runs.length} of ${page.total} runs`;
    const groups = new Map<string, IRunModel[]>();
    const body: Node[] = [];
    for (const run of page.runs) {
      if (run.sweep) {
        if (!groups.has(run.sweep)) {
          groups.set(run.sweep, []);
          body.push(h('div', { attrs: { 'data-sweep': run.sweep } }));
        }
        groups.get(run.sweep)!.push(run);
      } else {
        body.push(this._row(run));
      }
    }
    for (const node of body) {
      const sweep = (node as HTMLElement).dataset?.sweep;
      if (sweep) {
        this._fillSweep(node as HTMLElement, sweep, groups.get(sweep)!);
      }
    }
    if (page.runs.length === 0) {
      body.push(h('div', { className: 'simlab-empty', text: 'No runs match.' }));
    }
    this._table.replaceChildren(...body);
  }

  private _fillSweep(node: HTMLElement, sweep: string, runs: IRunModel[]): void {
    const done = runs.filter(r => r.state === 'completed').length;
    const open = !this._collapsed.has(sweep);
    node.className = 'simlab-sweep';
    const header = h('button', {
      className: 'simlab-sweep-header',
      text: `${open ? '▾' : '▸'} sweep ${sweep} — ${done}/${runs.length} completed`,
      attrs: { 'aria-expanded': String(open) }
    });
    header.addEventListener('click', () => {
      if (this._collapsed.has(sweep)) {
        this._collapsed.delete(sweep);
      } else {
        this._collapsed.add(sweep);
      }
      this._actions.changed();
    });
    node.replaceChildren(header, ...(open ? runs.map(r => this._row(r)) : []));
  }

  private _row(run: IRunModel): HTMLElement {
    const progress = run.progress;
    const fraction = progress ? Math.max(0, Math.min(1, progress.fraction)) : 0;
    const percent = Math.round(100 * (run.state === 'completed' ? 1 : fraction));
    const bar = h('div', {
      className: 'simlab-progress',
      attrs: {
        role: 'progressbar',
        'aria-valuemin': '0',
        'aria-valuemax': '100',
        'aria-valuenow': String(percent)
      }
    }, [h('div', { className: 'simlab-progress-fill', attrs: { style: `width: ${percent}%` } })]);
    const details = [`${percent}%`];
    if (progress) {
      details.push(`a=${progress.a.toFixed(3)}`, `z=${progress.z.toFixed(2)}`);
    }
    if (run.eta !== null && run.eta !== undefined) {
      details.push(`ETA ${formatDuration(run.eta)}`);
    }
    const buttons = [this._button('Log', 'simlab-log-button', () => this._actions.openLog(run))];
    buttons.push(
      this._button('Notebook', 'simlab-notebook-button', () => this._actions.openNotebook(run))
    );
    if (!FINAL_STATES.includes(run.state)) {
      if (run.state === 'running') {
        buttons.push(this._button('Stop', 'simlab-stop-button', () => void this._stop(run)));
      }
      buttons.push(this._button('Cancel', 'simlab-cancel-button', () => void this._cancel(run)));
    }
    return h(
      'div',
      { className: 'simlab-run', attrs: { 'data-run-id': run.id, 'data-state': run.state } },
      [
        h('div', { className: 'simlab-run-head' }, [
          h('span', { className: 'simlab-run-name', text: run.name, title: run.id }),
          h('span', { className: 'simlab-run-code', text: run.engine }),
          h('span', {
            className: `simlab-badge simlab-badge-${run.state}`,
            text: run.state,
            title: run.reason ?? run.state
          })
        ]),
        bar,
        h('div', { className: 'simlab-run-details', text: details.join(' · ') }),
        h('div', { className: 'simlab-run-actions' }, buttons)
      ]
    );
  }

  private _button(label: string, className: string, onClick: () => void): HTMLElement {
    const button = h('button', { className: `jp-mod-styled jp-mod-minimal simlab-button ${className}`, text: label });
    button.addEventListener('click', event => {
      event.stopPropagation();
      onClick();
    });
    return button;
  }

  private async _cancel(run: IRunModel): Promise<void> {
    const answer = await showDialog({
      title: 'Cancel run',
      body: `Cancel ${run.name} (${run.id})? The code is ended and the run becomes cancelled.`,
      buttons: [Dialog.cancelButton({ label: 'Keep running' }), Dialog.warnButton({ label: 'Cancel run' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await requestAPI(`runs/${encodeURIComponent(run.id)}`, { method: 'DELETE' });
    } catch (error) {
      await showErrorMessage('Cancel failed', error as Error);
    }
    this._actions.changed();
  }

  private async _stop(run: IRunModel): Promise<void> {
    const answer = await showDialog({
      title: 'Stop run',
      body: `Checkpoint and stop ${run.name} (${run.id})? It can be resumed later.`,
      buttons: [Dialog.cancelButton({ label: 'Keep running' }), Dialog.warnButton({ label: 'Stop run' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await requestAPI(`runs/${encodeURIComponent(run.id)}/stop`, { method: 'POST' });
    } catch (error) {
      await showErrorMessage('Stop failed', error as Error);
    }
    this._actions.changed();
  }

  private _select(className: string, all: string, values: string[]): HTMLSelectElement {
    const select = h('select', { className: `jp-mod-styled ${className}`, attrs: { 'aria-label': all } });
    select.appendChild(h('option', { text: all, attrs: { value: '' } }));
    for (const value of values) {
      select.appendChild(h('option', { text: value, attrs: { value } }));
    }
    return select;
  }

  private _actions: IRunActions;
  private _text: HTMLInputElement;
  private _state: HTMLSelectElement;
  private _code: HTMLSelectElement;
  private _summary: HTMLElement;
  private _table: HTMLElement;
  private _collapsed = new Set<string>();
}

/** The RunsPanel's options. */
export namespace RunsPanel {
  export interface IOptions {
    /** What the row buttons and filters ask for. */
    actions: IRunActions;
  }
}
