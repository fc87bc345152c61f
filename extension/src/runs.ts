/**
 * The runs section of the sidebar, a queue manager in the manner of
 * jupyterlab-slurm: filters, a toolbar acting on the selected runs (cancel,
 * stop, resume, publish, archive, delete) and a compact table with sortable columns,
 * grouped by sweep. A failed run shows its reason in its row, without hovering.
 */
import { Clipboard, Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { copyIcon, LabIcon, listIcon, notebookIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { COLUMNS, ColumnKey, fraction, isFinal, sortRuns } from './columns';
import { h } from './format';
import { ICode, IRunModel, IRunPage, RESUMABLE, STATES } from './models';
import { errorMessage, requestAPI } from './request';

/** What a row's buttons ask the sidebar to do. */
export interface IRunActions {
  openLog(run: IRunModel): void;
  openNotebook(run: IRunModel): void;
  changed(): void;
}

/** One action of the toolbar, applied to every selected run it fits. */
interface IBulkAction {
  label: string;
  className: string;
  /** Whether the action applies to a run in this state. */
  fits(run: IRunModel): boolean;
  /** The request for one run. */
  request(run: IRunModel): [string, RequestInit];
  /** Asked before acting; none for harmless actions. */
  confirm?: { title: string; body: string; accept: string };
}

const enc = encodeURIComponent;

/** The toolbar's actions. */
const BULK_ACTIONS: IBulkAction[] = [
  {
    label: 'Cancel',
    className: 'simlab-bulk-cancel',
    fits: run => !isFinal(run),
    request: run => [`runs/${enc(run.id)}`, { method: 'DELETE' }],
    confirm: {
      title: 'Cancel runs',
      body: 'The codes are ended and the runs become cancelled (they can be resumed):',
      accept: 'Cancel runs'
    }
  },
  {
    label: 'Stop',
    className: 'simlab-bulk-stop',
    fits: run => run.state === 'running',
    request: run => [`runs/${enc(run.id)}/stop`, { method: 'POST' }],
    confirm: {
      title: 'Stop runs',
      body: 'Checkpoint and stop these runs? They can be resumed later:',
      accept: 'Stop runs'
    }
  },
  {
    label: 'Resume',
    className: 'simlab-bulk-resume',
    fits: run => RESUMABLE.includes(run.state),
    request: run => [`runs/${enc(run.id)}/resume`, { method: 'POST' }]
  },
  {
    label: 'Publish',
    className: 'simlab-bulk-publish',
    fits: run => ['completed', 'failed', 'cancelled'].includes(run.state),
    request: run => [`runs/${enc(run.id)}/publish`, { method: 'POST' }],
    confirm: {
      title: 'Publish runs',
      body: 'Copy these runs read-only into the group space, for your group to read?',
      accept: 'Publish'
    }
  },
  {
    label: 'Archive',
    className: 'simlab-bulk-archive',
    fits: isFinal,
    request: run => [`runs/${enc(run.id)}/archive`, { method: 'POST' }],
    confirm: {
      title: 'Archive runs',
      body: 'Move these runs to the archive (ROOT/.simlab/archive)? They leave the list but stay on disk:',
      accept: 'Archive'
    }
  },
  {
    label: 'Delete',
    className: 'simlab-bulk-delete',
    fits: isFinal,
    request: run => [`runs/${enc(run.id)}/delete`, { method: 'POST' }],
    confirm: {
      title: 'Delete runs',
      body: 'Delete these runs and all their files for good? This cannot be undone:',
      accept: 'Delete'
    }
  }
];

/** The filters, the toolbar and the table of runs. */
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
    this._summary = h('span', { className: 'simlab-summary' });
    this._toolbar = h('div', { className: 'simlab-toolbar', attrs: { role: 'toolbar' } });
    this._table = h('div', { className: 'simlab-runs', attrs: { role: 'table' } });
    for (const input of [this._text, this._state, this._code]) {
      input.addEventListener('input', () => this._actions.changed());
    }
    this.node.append(
      h('div', { className: 'simlab-filters' }, [this._text, this._state, this._code]),
      this._toolbar,
      this._table
    );
    this._renderToolbar();
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

  /** Show one page of runs, sorted by the chosen column. */
  render(page: IRunPage): void {
    this._page = page;
    const present = new Set(page.runs.map(r => r.id));
    for (const id of [...this._selected]) {
      if (!present.has(id)) {
        this._selected.delete(id);
      }
    }
    this._summary.textContent =
      page.total === page.runs.length
        ? `${page.total} run${page.total === 1 ? '' : 's'}`
        : `${page.runs.length} of ${page.total} runs`;
    const now = Date.now();
    const runs = sortRuns(page.runs, this._sortKey, this._descending, now);
    const groups = new Map<string, IRunModel[]>();
    const body: Node[] = [this._header()];
    for (const run of runs) {
      if (run.sweep) {
        if (!groups.has(run.sweep)) {
          groups.set(run.sweep, []);
          body.push(h('div', { attrs: { 'data-sweep': run.sweep } }));
        }
        groups.get(run.sweep)!.push(run);
      } else {
        body.push(this._row(run, now));
      }
    }
    for (const node of body) {
      const sweep = (node as HTMLElement).dataset?.sweep;
      if (sweep) {
        this._fillSweep(node as HTMLElement, sweep, groups.get(sweep)!, now);
      }
    }
    if (page.runs.length === 0) {
      body.push(h('div', { className: 'simlab-empty', text: 'No runs match.' }));
    }
    this._table.replaceChildren(...body);
    this._renderToolbar();
  }

  /** The runs currently selected (of the page shown). */
  selected(): IRunModel[] {
    return (this._page?.runs ?? []).filter(r => this._selected.has(r.id));
  }

  private _header(): HTMLElement {
    const all = this._page?.runs ?? [];
    const box = h('input', {
      className: 'simlab-select-all',
      attrs: { type: 'checkbox', 'aria-label': 'Select all runs' }
    });
    box.checked = all.length > 0 && all.every(r => this._selected.has(r.id));
    box.indeterminate = !box.checked && all.some(r => this._selected.has(r.id));
    box.addEventListener('change', () => {
      this._selected = new Set(box.checked ? all.map(r => r.id) : []);
      this._refreshSelection();
    });
    const cells: Node[] = [h('span', { className: 'simlab-cell-select' }, [box])];
    for (const column of COLUMNS) {
      const active = column.key === this._sortKey;
      const order = this._descending ? 'descending' : 'ascending';
      const button = h('button', {
        className: `simlab-sort simlab-col-${column.key}`,
        text: column.label,
        title: `${column.caption}${active ? ` (sorted ${order})` : ''}; click to sort`,
        attrs: {
          'data-column': column.key,
          'aria-sort': active ? order : 'none'
        }
      });
      button.addEventListener('click', () => this._sortBy(column.key));
      cells.push(button);
    }
    cells.push(h('span', { className: 'simlab-cell-actions' }));
    return h('div', { className: 'simlab-run-header', attrs: { role: 'row' } }, cells);
  }

  private _sortBy(key: ColumnKey): void {
    if (key === this._sortKey) {
      this._descending = !this._descending;
    } else {
      this._sortKey = key;
      this._descending = key === 'created' || key === 'progress' || key === 'elapsed';
    }
    if (this._page) {
      this.render(this._page);
    }
  }

  private _fillSweep(node: HTMLElement, sweep: string, runs: IRunModel[], now: number): void {
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
    node.replaceChildren(header, ...(open ? runs.map(r => this._row(r, now)) : []));
  }

  private _row(run: IRunModel, now: number): HTMLElement {
    const percent = Math.round(100 * fraction(run));
    const box = h('input', {
      className: 'simlab-select',
      attrs: { type: 'checkbox', 'aria-label': `Select ${run.name} (${run.id})` }
    });
    box.checked = this._selected.has(run.id);
    box.addEventListener('change', () => {
      if (box.checked) {
        this._selected.add(run.id);
      } else {
        this._selected.delete(run.id);
      }
      this._refreshSelection();
    });
    const cells: Node[] = [h('span', { className: 'simlab-cell-select' }, [box])];
    for (const column of COLUMNS) {
      cells.push(this._cell(run, column.key, column.text(run, now), percent));
    }
    cells.push(
      h('span', { className: 'simlab-cell-actions' }, [
        this._iconButton(listIcon, 'Open the log', 'simlab-log-button', () => this._actions.openLog(run)),
        this._iconButton(notebookIcon, 'Open in a notebook', 'simlab-notebook-button', () =>
          this._actions.openNotebook(run)
        ),
        this._iconButton(copyIcon, `Copy the run id ${run.id}`, 'simlab-copy-id', () =>
          Clipboard.copyToSystem(run.id)
        )
      ])
    );
    const row = h(
      'div',
      {
        className: 'simlab-run',
        attrs: {
          role: 'row',
          'data-run-id': run.id,
          'data-state': run.state,
          'aria-selected': String(this._selected.has(run.id))
        }
      },
      cells
    );
    if (run.reason && (run.state === 'failed' || run.state === 'corrupt' || run.state === 'cancelled')) {
      row.appendChild(h('div', { className: 'simlab-run-reason', text: run.reason, title: run.reason }));
    }
    row.addEventListener('click', event => {
      if ((event.target as HTMLElement).closest('button, input')) {
        return;
      }
      box.checked = !box.checked;
      box.dispatchEvent(new Event('change'));
    });
    return row;
  }

  private _cell(run: IRunModel, key: ColumnKey, text: string, percent: number): HTMLElement {
    if (key === 'name') {
      return h('span', {
        className: 'simlab-run-name simlab-col-name',
        text,
        title: `${run.name}\n${run.id}${run.cluster ? `\ncluster ${run.cluster}` : ''}`
      });
    }
    if (key === 'state') {
      return h('span', { className: 'simlab-cell-state simlab-col-state' }, [
        h('span', { className: `simlab-badge simlab-badge-${run.state}`, text, title: run.reason ?? run.state })
      ]);
    }
    if (key === 'progress') {
      const detail = run.progress
        ? `step ${run.progress.step}${run.progress.steps ? ` of ${run.progress.steps}` : ''}, a=${run.progress.a.toFixed(3)}, z=${run.progress.z.toFixed(2)}`
        : 'no progress reported yet';
      return h(
        'span',
        {
          className: 'simlab-progress simlab-col-progress',
          title: detail,
          attrs: {
            role: 'progressbar',
            'aria-valuemin': '0',
            'aria-valuemax': '100',
            'aria-valuenow': String(percent)
          }
        },
        [
          h('span', { className: 'simlab-progress-fill', attrs: { style: `width: ${percent}%` } }),
          h('span', { className: 'simlab-progress-text', text })
        ]
      );
    }
    return h('span', { className: `simlab-cell simlab-run-${key} simlab-col-${key}`, text });
  }

  private _iconButton(icon: LabIcon, title: string, className: string, onClick: () => void): HTMLElement {
    const button = h('button', {
      className: `jp-mod-minimal jp-Button simlab-icon-button ${className}`,
      title,
      attrs: { 'aria-label': title }
    });
    button.appendChild(icon.element({ tag: 'span', className: 'simlab-icon' }));
    button.addEventListener('click', event => {
      event.stopPropagation();
      onClick();
    });
    return button;
  }

  private _refreshSelection(): void {
    for (const row of this._table.querySelectorAll<HTMLElement>('.simlab-run')) {
      const selected = this._selected.has(row.dataset.runId ?? '');
      row.setAttribute('aria-selected', String(selected));
      const box = row.querySelector<HTMLInputElement>('.simlab-select');
      if (box) {
        box.checked = selected;
      }
    }
    const all = this._page?.runs ?? [];
    const header = this._table.querySelector<HTMLInputElement>('.simlab-select-all');
    if (header) {
      header.checked = all.length > 0 && all.every(r => this._selected.has(r.id));
      header.indeterminate = !header.checked && all.some(r => this._selected.has(r.id));
    }
    this._renderToolbar();
  }

  private _renderToolbar(): void {
    const selected = this.selected();
    const buttons = BULK_ACTIONS.map(action => {
      const fitting = selected.filter(action.fits);
      const button = h('button', {
        className: `jp-mod-styled simlab-button ${action.className}`,
        text: fitting.length ? `${action.label} (${fitting.length})` : action.label,
        title: fitting.length
          ? `${action.label} ${fitting.map(r => r.name).join(', ')}`
          : `${action.label}: select runs it applies to`
      });
      button.disabled = fitting.length === 0;
      button.addEventListener('click', () => void this._bulk(action, fitting));
      return button;
    });
    this._toolbar.replaceChildren(this._summary, ...buttons);
  }

  private async _bulk(action: IBulkAction, runs: IRunModel[]): Promise<void> {
    if (action.confirm) {
      const list = h('ul', { className: 'simlab-dialog-list' }, runs.slice(0, 12).map(r =>
        h('li', { text: `${r.name} (${r.id})` })
      ));
      if (runs.length > 12) {
        list.appendChild(h('li', { text: `… and ${runs.length - 12} more` }));
      }
      const body = new Widget({ node: h('div', {}, [h('p', { text: action.confirm.body }), list]) });
      const answer = await showDialog({
        title: action.confirm.title,
        body,
        buttons: [Dialog.cancelButton({ label: 'Keep' }), Dialog.warnButton({ label: action.confirm.accept })]
      });
      if (!answer.button.accept) {
        return;
      }
    }
    const failures: string[] = [];
    for (const run of runs) {
      const [path, init] = action.request(run);
      try {
        await requestAPI(path, init);
        this._selected.delete(run.id);
      } catch (error) {
        failures.push(`${run.name} (${run.id}): ${errorMessage(error)}`);
      }
    }
    this._actions.changed();
    if (failures.length) {
      await showErrorMessage(`${action.label} failed`, failures.join('\n'));
    }
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
  private _toolbar: HTMLElement;
  private _table: HTMLElement;
  private _page: IRunPage | null = null;
  private _selected = new Set<string>();
  private _collapsed = new Set<string>();
  private _sortKey: ColumnKey = 'created';
  private _descending = true;
}

/** The RunsPanel's options. */
export namespace RunsPanel {
  export interface IOptions {
    /** What the row buttons and filters ask for. */
    actions: IRunActions;
  }
}
