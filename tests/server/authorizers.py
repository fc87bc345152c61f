"""Authorizers the server tests configure (Jupyter's ``ServerApp.authorizer_class``)."""

from __future__ import annotations

from jupyter_server.auth.authorizer import Authorizer


class ReadOnlyAuthorizer(Authorizer):
    """Lets an authenticated user read everything and change nothing."""

    def is_authorized(self, handler, user, action, resource) -> bool:
        return action == "read"
