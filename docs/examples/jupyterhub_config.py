"""JupyterHub for a research group running simlab: one hub, one server per member.

Copy to /etc/jupyterhub/jupyterhub_config.py, adapt the names marked EDIT, and start
the hub as root (it must switch to each member's system user):

    jupyterhub -f /etc/jupyterhub/jupyterhub_config.py

Two ways to place the members' servers, chosen by ``SPAWN_ON_CLUSTER``:

- on this machine, as each member's own system user (``LocalProcessSpawner``);
- as a Slurm job submitted as the member (``batchspawner.SlurmSpawner``), for hubs
  whose login node should not carry the members' kernels.

Either way each server runs simlab's server extension as its user: runs, catalogue
and dask clusters belong to that user; the group shares results only through the
group space (``simlab publish ID``). See docs/jupyterhub.md.
"""

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

#: The environment every member's server runs (EDIT): readable and executable by
#: all members, e.g. ``python3 -m venv /opt/simlab && /opt/simlab/bin/pip install
#: simlab jupyterhub`` (plus ``batchspawner`` for the Slurm variant). Build it from
#: a system Python (/usr/bin/python3), never one under an admin's home folder.
ENV = "/opt/simlab"
#: The group's POSIX group (EDIT): who may log in, and who shares the group space.
GROUP = "cosmo"
SPAWN_ON_CLUSTER = False

# -- the hub ------------------------------------------------------------------------
c.JupyterHub.bind_url = "http://:8000"  # put TLS in front (nginx) or set ssl_cert
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"

# -- who may log in -----------------------------------------------------------------
# System passwords (PAM), restricted to the group's members. Any authenticator works
# (OAuth, LDAP) as long as its user names are system users of this machine.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {GROUP}
c.Authenticator.admin_users = {"alice"}  # EDIT: who may start/stop others' servers

# -- where each member's server runs ---------------------------------------------------
c.Spawner.default_url = "/lab"  # JupyterLab, with the Simulations sidebar
c.Spawner.notebook_dir = "~"
# Keep a long-lived server: the Dispatcher inside it follows the member's runs
# (restart chains); runs themselves survive a server restart in their directories.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

if not SPAWN_ON_CLUSTER:
    c.JupyterHub.spawner_class = "localprocess"
    c.Spawner.cmd = [f"{ENV}/bin/jupyterhub-singleuser"]
else:
    # The server is a batch job of the member; the hub must be reachable from nodes.
    c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
    c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
    c.JupyterHub.hub_connect_url = "http://login01:8081"  # EDIT: as nodes see it
    c.Spawner.cmd = [f"{ENV}/bin/jupyterhub-singleuser"]
    c.SlurmSpawner.req_partition = "interactive"  # EDIT
    c.SlurmSpawner.req_runtime = "12:00:00"
    c.SlurmSpawner.req_memory = "8G"
    c.SlurmSpawner.req_nprocs = "2"
    c.SlurmSpawner.req_prologue = f"export PATH={ENV}/bin:$PATH"
