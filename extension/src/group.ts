/**
 * The group section of the sidebar: runs members published into the group
 * space (`simlab publish`, `POST runs/{id}/publish`), read-only, newest first.
 */
import { Clipboard } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { formatWhen, h } from './format';
import { IPublished } from './models';

/** Lists the answer of `GET published`. */
export class GroupPanel extends Widget {
  constructor() {
    super();
    this.addClass('simlab-GroupPanel');
  }

  /** Show the published runs. */
  render(runs: IPublished[]): void {
    const nodes: Node[] = [h('h3', { className: 'simlab-section-title', text: 'Group' })];
    if (runs.length === 0) {
      nodes.push(
        h('div', {
          className: 'simlab-empty',
          text: 'Nothing published: `simlab publish RUN_ID` shares an ended run with your group.'
        })
      );
    }
    for (const run of runs) {
      const copy = h('button', {
        className: 'jp-mod-styled jp-mod-minimal simlab-button simlab-copy-path',
        text: 'Copy path',
        title: `Copy ${run.path} (open it in Python with simlab.Run(path))`
      });
      copy.addEventListener('click', () => Clipboard.copyToSystem(run.path));
      nodes.push(
        h('div', { className: 'simlab-published', attrs: { 'data-run-id': run.id } }, [
          h('span', { className: 'simlab-run-name', text: run.name ?? run.id, title: `${run.id}\n${run.path}` }),
          h('span', { className: 'simlab-published-details', text: `${run.engine ?? ''} · ${run.owner} · ${formatWhen(run.published)}` }),
          copy
        ])
      );
    }
    this.node.replaceChildren(...nodes);
  }
}
