/**
 * simlab's JupyterLab extension: the "Simulations" sidebar, its commands in the
 * palette and a "New simulation" launcher card.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, WidgetTracker, MainAreaWidget } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';

import { LogContent, createLogViewer } from './logviewer';
import { IRunModel } from './models';
import { newSimulationNotebook, runNotebook, saveNotebook } from './notebooks';
import { requestAPI } from './request';
import { SimlabSidebar } from './sidebar';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><circle cx="12" cy="12" r="2.2"/>
<circle cx="5" cy="7" r="1.4"/><circle cx="18" cy="5.5" r="1.2"/><circle cx="19" cy="16" r="1.6"/>
<circle cx="7" cy="18" r="1.3"/><circle cx="13" cy="20" r="0.9"/><circle cx="10" cy="4" r="0.8"/>
<circle cx="3.5" cy="13" r="0.9"/></g></svg>`;

/** The sidebar and launcher icon. */
export const simlabIcon = new LabIcon({ name: 'simlab:icon', svgstr: ICON_SVG });

/** Command ids. */
export namespace CommandIDs {
  export const show = 'simlab:show-sidebar';
  export const refresh = 'simlab:refresh';
  export const newSimulation = 'simlab:new-simulation';
  export const openLog = 'simlab:open-log';
  export const openNotebook = 'simlab:open-in-notebook';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'simlab-labextension:plugin',
  description: 'Simulations sidebar: runs, progress, logs and clusters of simlab.',
  autoStart: true,
  optional: [ICommandPalette, ILauncher, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands, shell, serviceManager } = app;
    const logs = new WidgetTracker<MainAreaWidget<LogContent>>({ namespace: 'simlab-log' });

    const openLog = (run: { id: string; name: string }) => {
      const existing = logs.find(w => w.id === `simlab-log-${run.id}`);
      if (existing) {
        shell.activateById(existing.id);
        return;
      }
      const widget = createLogViewer(run);
      void logs.add(widget);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
    };
    const openNotebook = async (run: IRunModel) => {
      const path = await saveNotebook(serviceManager.contents, `simlab-${run.id}`, runNotebook(run));
      await commands.execute('docmanager:open', { path });
    };

    const sidebar = new SimlabSidebar({
      actions: { openLog, openNotebook: run => void openNotebook(run) }
    });
    sidebar.title.icon = simlabIcon;
    shell.add(sidebar, 'left', { rank: 210 });
    if (restorer) {
      restorer.add(sidebar, sidebar.id);
    }

    commands.addCommand(CommandIDs.show, {
      label: 'Show Simulations',
      caption: 'Show the Simulations sidebar',
      execute: () => shell.activateById(sidebar.id)
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Simulations',
      execute: () => sidebar.refresh()
    });
    commands.addCommand(CommandIDs.openLog, {
      label: args => `Open Log of ${args.id ?? 'a Run'}`,
      execute: args => openLog({ id: String(args.id), name: String(args.name ?? args.id) })
    });
    commands.addCommand(CommandIDs.openNotebook, {
      label: 'Open Run in Notebook',
      execute: async args =>
        openNotebook(await requestAPI<IRunModel>(`runs/${encodeURIComponent(String(args.id))}`))
    });
    commands.addCommand(CommandIDs.newSimulation, {
      label: 'New Simulation',
      caption: 'A notebook that configures and submits a simulation',
      icon: args => (args.isPalette ? undefined : simlabIcon),
      execute: async () => {
        const path = await saveNotebook(serviceManager.contents, 'new-simulation', newSimulationNotebook());
        await commands.execute('docmanager:open', { path });
      }
    });

    if (palette) {
      const category = 'Simulations';
      for (const command of [CommandIDs.show, CommandIDs.refresh, CommandIDs.newSimulation]) {
        palette.addItem({ command, category });
      }
    }
    if (launcher) {
      launcher.add({ command: CommandIDs.newSimulation, category: 'Notebook', rank: 10 });
    }
  }
};

export default plugin;
