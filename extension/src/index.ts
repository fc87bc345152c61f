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
import { IFrame, LabIcon } from '@jupyterlab/ui-components';

import { LogContent, createLogViewer } from './logviewer';
import { ICluster, IRunModel } from './models';
import { newSimulationNotebook, runNotebook, saveNotebook } from './notebooks';
import { requestAPI } from './request';
import { SimlabSidebar } from './sidebar';

/**
 * A cube (the simulation box) holding particles: bold strokes that read at 16 px
 * in the activity bar. `jp-icon3` lets the theme recolour it.
 */
const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
<g class="jp-icon3" fill="none" stroke="#616161" stroke-width="1.8" stroke-linejoin="round">
<path d="M12 2.5 20.5 7v10L12 21.5 3.5 17V7z"/><path d="M3.5 7 12 11.5 20.5 7M12 11.5v10"/></g>
<g class="jp-icon3" fill="#616161"><circle cx="8" cy="13" r="1.5"/><circle cx="16" cy="13.5" r="1.5"/>
<circle cx="12" cy="6.8" r="1.4"/><circle cx="9.5" cy="17.2" r="1.1"/><circle cx="15" cy="17.8" r="1.1"/></g></svg>`;

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

/** A main-area tab showing a dask dashboard, as dask-labextension opens them. */
function dashboardWidget(cluster: ICluster): MainAreaWidget<IFrame> {
  const content = new IFrame({ sandbox: ['allow-scripts', 'allow-same-origin', 'allow-popups'] });
  content.url = cluster.dashboard ?? '';
  const widget = new MainAreaWidget({ content });
  widget.id = `simlab-dashboard-${cluster.id}`;
  widget.title.label = `Dask ${cluster.profile}·${cluster.code}`;
  widget.title.caption = `${cluster.id} on ${cluster.host}: ${cluster.dashboard}`;
  widget.title.closable = true;
  return widget;
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

    const dashboards = new WidgetTracker<MainAreaWidget<IFrame>>({ namespace: 'simlab-dashboard' });
    const openDashboard = (cluster: ICluster) => {
      const existing = dashboards.find(w => w.id === `simlab-dashboard-${cluster.id}`);
      if (existing) {
        shell.activateById(existing.id);
        return;
      }
      const widget = dashboardWidget(cluster);
      void dashboards.add(widget);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
    };

    const sidebar = new SimlabSidebar({
      actions: { openLog, openNotebook: run => void openNotebook(run), openDashboard }
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
