"""Nothing outside the run root is read or written; XSRF guards cookie writes."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.server.conftest import fake_run


@pytest.fixture
def raw_get(http_server_client, jp_auth_header, jp_base_url):
    """GET a path exactly as written (no client-side escaping or normalising)."""

    async def get(path: str):
        return await http_server_client.fetch(
            jp_base_url + path, headers=jp_auth_header, raise_error=False
        )

    return get


@pytest.fixture
def secret(tmp_path):
    """A file outside the run root that must never be served."""
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text("TOP SECRET")
    return path


@pytest.mark.parametrize(
    "path",
    [
        "simlab/api/runs/..%2F..%2Foutside/log",
        "simlab/api/runs/%2e%2e/log",
        "simlab/api/runs/..%2Fsecret.txt",
        "simlab/api/runs/%2Fetc%2Fpasswd/artifacts",
        "simlab/api/runs/..%5C..%5Cwin/log",
    ],
)
async def test_traversal_in_the_run_id_is_refused(raw_get, manager, secret, path):
    response = await raw_get(path)
    assert response.code in (400, 404)
    assert b"TOP SECRET" not in response.body
    assert b"root:" not in response.body


async def test_a_run_directory_linking_outside_the_root_is_not_a_run(
    raw_get, manager, secret
):
    outside = fake_run(secret.parent, "evil")
    (outside / "log").write_text("TOP SECRET")
    (manager.root / outside.name).symlink_to(outside)
    for suffix in ("", "/log", "/artifacts?parts=log"):
        response = await raw_get(f"simlab/api/runs/{outside.name}{suffix}")
        assert response.code == 404, suffix
        assert b"TOP SECRET" not in response.body


async def test_artifacts_skip_links_and_refuse_unknown_parts(raw_get, manager, secret):
    run = fake_run(manager.root, "zipme")
    (run / "output" / "snap_000.hdf5").write_bytes(b"\x89HDF" + bytes(5000))
    (run / "output" / "stolen.txt").symlink_to(secret)
    (run / "output" / "up").symlink_to(secret.parent, target_is_directory=True)
    response = await raw_get(f"simlab/api/runs/{run.name}/artifacts?parts=log,output")
    assert response.code == 200
    assert response.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.body)) as zf:
        names = sorted(zf.namelist())
        assert names == [f"{run.name}/log", f"{run.name}/output/snap_000.hdf5"]
        assert zf.read(f"{run.name}/log") == (run / "log").read_bytes()
        snap = zf.read(f"{run.name}/output/snap_000.hdf5")
        assert snap == (run / "output" / "snap_000.hdf5").read_bytes()
    for parts in ("../../outside", "log,/etc", "everything"):
        response = await raw_get(f"simlab/api/runs/{run.name}/artifacts?parts={parts}")
        assert response.code == 400
        message = json.loads(response.body)["message"]
        assert "allowed" in message
        assert "config" in message


async def test_default_artifacts_are_the_small_parts(raw_get, manager):
    run = fake_run(manager.root, "small")
    (run / "output" / "big.bin").write_bytes(bytes(1000))
    response = await raw_get(f"simlab/api/runs/{run.name}/artifacts")
    with zipfile.ZipFile(io.BytesIO(response.body)) as zf:
        names = {name.split("/", 1)[1] for name in zf.namelist()}
    assert names == {"config.json", "status.json", "events.jsonl", "log"}


async def test_writes_with_a_cookie_need_the_xsrf_token(
    http_server_client, jp_serverapp, jp_base_url, manager
):
    token = jp_serverapp.identity_provider.token
    url = jp_base_url + "simlab/api/runs"
    login = await http_server_client.fetch(
        f"{jp_base_url}simlab/api/health?token={token}", raise_error=False
    )
    cookies = [
        c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie") if "=" in c
    ]
    assert any(c.startswith("username-") for c in cookies), cookies
    body = json.dumps({"box": {"particles_per_side": 0}})
    # When a browser session posts without the XSRF token, it is refused
    refused = await http_server_client.fetch(
        url,
        method="POST",
        body=body,
        headers={"Cookie": "; ".join(cookies)},
        raise_error=False,
    )
    assert refused.code == 403
    assert "_xsrf" in refused.body.decode()
    # Then with the token in both cookie and header, the request is heard (422)
    xsrf = "2|abcdef01|0123456789abcdef0123456789abcdef|1700000000"
    accepted = await http_server_client.fetch(
        url,
        method="POST",
        body=body,
        headers={
            "Cookie": "; ".join([*cookies, f"_xsrf={xsrf}"]),
            "X-XSRFToken": xsrf,
        },
        raise_error=False,
    )
    assert accepted.code == 422


@pytest.mark.parametrize("name", ["log", "results.json"])
async def test_a_member_file_linking_outside_is_never_served(
    raw_get, manager, secret, name
):
    run = fake_run(manager.root, "linked")
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(secret)
    route = {"log": "log", "results.json": "results"}[name]
    for suffix in (route, f"{route}?tail=5", "events", "artifacts?parts=log,results"):
        response = await raw_get(f"simlab/api/runs/{run.name}/{suffix}")
        assert response.code in (200, 404), (suffix, response.code)
        assert b"TOP SECRET" not in response.body, suffix
