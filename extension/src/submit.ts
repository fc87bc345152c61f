/**
 * The sidebar's "New run" form: a few RunConfig fields posted to `POST runs`.
 * The server is the one validator (the same checks as the CLI and Python): a
 * refused run shows each field's message under its input, and messages for
 * fields the form does not show (or other refusals) in a list below, never a
 * bare status code.
 */
import { Widget } from '@lumino/widgets';

import { h } from './format';
import { ICode, IClusters, IRunModel } from './models';
import { APIError, IFieldError, requestAPI } from './request';

/** One input of the form, bound to a dotted RunConfig field. */
interface IField {
  loc: string;
  label: string;
  kind: 'text' | 'number' | 'select';
  value: string;
  placeholder?: string;
  help: string;
}

const FIELDS: IField[] = [
  { loc: 'metadata.name', label: 'Name', kind: 'text', value: 'my-run', help: 'letters, digits, . _ -' },
  { loc: 'code.engine', label: 'Code', kind: 'select', value: 'pm', help: 'simulation code' },
  {
    loc: 'code.executable',
    label: 'Executable',
    kind: 'text',
    value: '',
    placeholder: 'from the profile or PATH',
    help: 'path of the code (Gadget4, CONCEPT)'
  },
  { loc: 'box.size', label: 'Box [Mpc/h]', kind: 'number', value: '128', help: 'comoving box side' },
  { loc: 'box.particles_per_side', label: 'Particles/side', kind: 'number', value: '32', help: 'N^(1/3)' },
  { loc: 'ics.z_start', label: 'Start z', kind: 'number', value: '49', help: 'redshift of the ICs' },
  { loc: 'gravity.steps', label: 'Steps', kind: 'number', value: '30', help: 'time steps' },
  { loc: 'resources.cores', label: 'Cores', kind: 'number', value: '1', help: 'MPI ranks' },
  { loc: 'resources.cluster', label: 'Cluster', kind: 'select', value: 'local', help: 'cluster profile' }
];

/** Put `value` at the dotted `loc` of a nested object. */
function assign(target: Record<string, any>, loc: string, value: unknown): void {
  const parts = loc.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    node = node[part] ??= {};
  }
  node[parts[parts.length - 1]] = value;
}

/** A collapsible form that submits a run and shows the server's refusals. */
export class SubmitPanel extends Widget {
  constructor(options: SubmitPanel.IOptions) {
    super({ node: document.createElement('details') });
    this.addClass('simlab-SubmitPanel');
    this._submitted = options.submitted;
    const form = h('form', { className: 'simlab-form', attrs: { novalidate: '' } });
    for (const field of FIELDS) {
      form.appendChild(this._field(field));
    }
    this._errors = h('ul', { className: 'simlab-form-errors', attrs: { role: 'alert' } });
    this._status = h('div', { className: 'simlab-form-status', attrs: { role: 'status' } });
    const submit = h('button', {
      className: 'jp-mod-styled jp-mod-accept simlab-submit',
      text: 'Submit',
      attrs: { type: 'submit' }
    });
    form.append(h('div', { className: 'simlab-form-actions' }, [submit]), this._errors, this._status);
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this.submit();
    });
    this.node.append(h('summary', { className: 'simlab-section-title', text: 'New run' }), form);
  }

  /** Offer the installed codes and the cluster profiles. */
  setChoices(codes: ICode[], clusters: IClusters): void {
    this._options('code.engine', codes.map(c => [c.name, c.ok ? c.name : `${c.name} (unavailable)`]));
    this._options('resources.cluster', clusters.profiles.map(p => [p.name, `${p.name} (${p.kind})`]));
  }

  /** The RunConfig the inputs describe (empty inputs left to the defaults). */
  config(): Record<string, unknown> {
    const config: Record<string, unknown> = {};
    for (const field of FIELDS) {
      const raw = this._inputs.get(field.loc)!.value.trim();
      if (raw === '') {
        continue;
      }
      const number = Number(raw);
      // a number the server checks; anything else goes as typed, for its message
      assign(config, field.loc, field.kind === 'number' && isFinite(number) ? number : raw);
    }
    return config;
  }

  /** Post the configuration; show the run created or every reason it was refused. */
  async submit(): Promise<IRunModel | null> {
    this._clear();
    this._status.textContent = 'submitting…';
    try {
      const run = await requestAPI<IRunModel>('runs', {
        method: 'POST',
        body: JSON.stringify(this.config())
      });
      const notes = (run.notes ?? []).join(' ');
      this._status.textContent = `submitted ${run.id}${notes ? ` — ${notes}` : ''}`;
      this._submitted(run);
      return run;
    } catch (error) {
      this._status.textContent = '';
      this._showError(error);
      return null;
    }
  }

  private _showError(error: unknown): void {
    if (error instanceof APIError && error.errors.length > 0) {
      this._errors.appendChild(
        h('li', { text: `Refused: ${error.errors.length} invalid field(s).` })
      );
      for (const entry of error.errors) {
        this._fieldError(entry);
      }
      return;
    }
    const status = error instanceof APIError ? ` (${error.status})` : '';
    const message = error instanceof Error ? error.message : String(error);
    this._errors.appendChild(h('li', { text: `Refused${status}: ${message}` }));
  }

  private _fieldError(entry: IFieldError): void {
    const slot = this._messages.get(entry.loc);
    if (slot) {
      slot.textContent = entry.msg;
      slot.hidden = false;
      this._inputs.get(entry.loc)!.setAttribute('aria-invalid', 'true');
      return;
    }
    this._errors.appendChild(
      h('li', { attrs: { 'data-loc': entry.loc }, text: `${entry.loc} = ${JSON.stringify(entry.value)}: ${entry.msg}` })
    );
  }

  private _clear(): void {
    this._errors.replaceChildren();
    for (const [loc, slot] of this._messages) {
      slot.textContent = '';
      slot.hidden = true;
      this._inputs.get(loc)!.removeAttribute('aria-invalid');
    }
  }

  private _field(field: IField): HTMLElement {
    const id = `simlab-field-${field.loc.replace(/\./g, '-')}`;
    const input =
      field.kind === 'select'
        ? h('select', { className: 'jp-mod-styled' })
        : h('input', {
            className: 'jp-mod-styled',
            attrs: { type: 'text', inputmode: field.kind === 'number' ? 'decimal' : 'text' }
          });
    input.id = id;
    input.setAttribute('data-loc', field.loc);
    if (field.kind === 'select') {
      input.appendChild(h('option', { text: field.value, attrs: { value: field.value } }));
    }
    input.value = field.value;
    if (field.placeholder) {
      input.setAttribute('placeholder', field.placeholder);
    }
    const message = h('div', { className: 'simlab-field-error', attrs: { 'data-loc': field.loc } });
    message.hidden = true;
    this._inputs.set(field.loc, input);
    this._messages.set(field.loc, message);
    return h('div', { className: 'simlab-field' }, [
      h('label', { text: field.label, title: `${field.loc}: ${field.help}`, attrs: { for: id } }),
      input,
      message
    ]);
  }

  private _options(loc: string, choices: string[][]): void {
    const select = this._inputs.get(loc) as HTMLSelectElement;
    const current = select.value;
    select.replaceChildren(...choices.map(([value, label]) => h('option', { text: label, attrs: { value } })));
    if (choices.some(([value]) => value === current)) {
      select.value = current;
    }
  }

  private _submitted: (run: IRunModel) => void;
  private _inputs = new Map<string, HTMLInputElement | HTMLSelectElement>();
  private _messages = new Map<string, HTMLElement>();
  private _errors: HTMLElement;
  private _status: HTMLElement;
}

/** The SubmitPanel's options. */
export namespace SubmitPanel {
  export interface IOptions {
    /** Called with each run the form created. */
    submitted: (run: IRunModel) => void;
  }
}
