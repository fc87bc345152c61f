"""Run as another user: ask ports for a dask identity, in plain TCP and over TLS.

``python dask_probe.py PORT...`` prints one JSON object: ``tcp:PORT`` and
``tls:PORT`` map to ``answered`` or the name of the exception that stopped the
probe; ``http:PORT`` to the HTTP status of dask's worker page there (or the
exception); ``control`` is the same probe against a plain scheduler this script
starts itself, which shows that a dask endpoint open to this user does answer.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request

from distributed import Scheduler
from distributed.comm import connect
from distributed.security import Security


async def _identity(address: str, **connection_args) -> object:
    comm = await connect(address, timeout=3, **connection_args)
    try:
        await comm.write({"op": "identity"})
        return await comm.read()
    finally:
        comm.abort()


async def ask(address: str, **connection_args) -> str:
    """``answered`` if ``address`` replies to a dask ``identity`` request."""
    try:
        # connect's own timeout does not cover the handshake an HTTP port never sends
        reply = await asyncio.wait_for(_identity(address, **connection_args), 5)
    except Exception as exc:  # the name of what stopped us is the answer
        return type(exc).__name__
    return "answered" if isinstance(reply, dict) and "type" in reply else "odd reply"


def page(port: int) -> str:
    """HTTP status of dask's workers page on ``port``, or the exception's name."""
    url = f"http://127.0.0.1:{port}/info/main/workers.html"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except Exception as exc:  # not HTTP at all
        return type(exc).__name__


async def main(ports: list[int]) -> dict[str, str]:
    """Probe every port with no credentials and with this user's own TLS ones."""
    own = Security.temporary().get_connection_args("client")
    outcome = {}
    async with Scheduler(
        host="127.0.0.1", port=0, dashboard=False, dashboard_address="127.0.0.1:0"
    ) as control:
        outcome["control"] = await ask(control.address)
    for port in ports:
        outcome[f"tcp:{port}"] = await ask(f"tcp://127.0.0.1:{port}")
        outcome[f"tls:{port}"] = await ask(f"tls://127.0.0.1:{port}", **own)
        outcome[f"http:{port}"] = page(port)
    return outcome


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main([int(p) for p in sys.argv[1:]]))))
