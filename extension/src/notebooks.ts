/**
 * Notebooks the sidebar writes: one that loads a run, one that starts a new
 * simulation. Both go through the server's contents API.
 */
import { Contents } from '@jupyterlab/services';

import { IRunModel } from './models';

function cell(type: 'code' | 'markdown', source: string): any {
  return type === 'code'
    ? { cell_type: 'code', source, metadata: {}, outputs: [], execution_count: null }
    : { cell_type: 'markdown', source, metadata: {} };
}

/** A notebook of ``cells``; nbformat 4.5 wants a unique id on every cell. */
function notebook(cells: any[]): any {
  return {
    cells: cells.map((body, index) => ({ id: `simlab-cell-${index}`, ...body })),
    metadata: {
      kernelspec: { name: 'python3', display_name: 'Python 3 (ipykernel)', language: 'python' }
    },
    nbformat: 4,
    nbformat_minor: 5
  };
}

/** Cells that load a run, watch it and show its last snapshot. */
export function runNotebook(run: IRunModel): any {
  return notebook([
    cell('markdown', `# ${run.name}\n\nRun \`${run.id}\` (${run.engine}).`),
    cell('code', `import simlab\n\nrun = simlab.Run(${JSON.stringify(run.path)})\nrun.status`),
    cell('code', 'from simlab.widgets import RunMonitor, SnapshotViewer\n\nRunMonitor(run)'),
    cell(
      'code',
      'SnapshotViewer(run) if run.snapshots else print("no snapshot written yet")'
    )
  ]);
}

/** Cells with the RunForm that configures and submits a new simulation. */
export function newSimulationNotebook(): any {
  return notebook([
    cell(
      'markdown',
      '# New simulation\n\nFill in the form and press Submit, or edit and run the cells below. The run appears in the Simulations sidebar.'
    ),
    cell(
      'code',
      'import simlab\nfrom simlab.widgets import RunForm\n\nform = RunForm({"box": {"size": 128.0, "particles_per_side": 32}, "metadata": {"name": "my-run"}})\nform'
    ),
    cell('code', 'run = simlab.submit(form.config)\nrun')
  ]);
}

/** Save `content` as a notebook at a free path derived from `stem`; the path. */
export async function saveNotebook(
  contents: Contents.IManager,
  stem: string,
  content: any
): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const path = i === 0 ? `${stem}.ipynb` : `${stem}-${i}.ipynb`;
    try {
      await contents.get(path, { content: false });
    } catch {
      await contents.save(path, { type: 'notebook', format: 'json', content });
      return path;
    }
  }
  throw new Error(`no free notebook name for ${stem}`);
}
