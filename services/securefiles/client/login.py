"""`client.login`: people's sign-in (the provider authz names, and a session token for an ID token
from it), as the client's own types. No token of ours is needed for either."""

from __future__ import annotations

from typing import TYPE_CHECKING

from securefiles.client import convert
from securefiles.client.types import SignedIn, SignInConfig

if TYPE_CHECKING:
    from securefiles.client.api import SecureFilesClient


class LoginClient:
    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def config(self) -> SignInConfig:
        """The organization's OpenID provider and the client id to use there."""
        return convert.sign_in_config(self._api.sign_in_config())

    def sign_in(self, id_token: str) -> SignedIn:
        """The person's session token for an ID token the provider issued to that client id."""
        return convert.signed_in(self._api.sign_in(id_token))
