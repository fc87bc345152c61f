"""A code that refuses to prepare a run is a 422 naming why, never a 500."""

from __future__ import annotations

import json


async def test_an_executable_that_is_not_the_code_is_a_422(jp_fetch, manager, tmp_path):
    # Given an "executable" that prints an error instead of Gadget4's options
    fake = tmp_path / "not-gadget4"
    fake.write_text(
        "#!/bin/sh\necho 'Error: parameter file cannot be read' >&2\nexit 3\n"
    )
    fake.chmod(0o755)
    config = {
        "code": {"engine": "gadget4", "executable": str(fake)},
        "box": {"particles_per_side": 8},
        "resources": {"cores": 1},
    }
    # When it is submitted
    response = await jp_fetch("simlab/api/runs", method="POST",
                              body=json.dumps(config), raise_error=False)  # fmt: skip
    # Then the answer is a 422 whose field entry carries the code's own words
    assert response.code == 422
    answer = json.loads(response.body)
    [error] = answer["errors"]
    assert error["loc"] == "code" and error["value"] == "gadget4"
    assert "exit status 3" in error["msg"]
    assert "parameter file cannot be read" in error["msg"]
    # and no run directory is left behind, not even a half-made one
    assert not [p for p in manager.root.iterdir() if not p.name.startswith(".simlab")]
