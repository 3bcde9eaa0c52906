"""kms's calls to authz: the signing keys its callers' tokens are verified with, and who is an
operator (nothing more than every service asks)."""

from __future__ import annotations

from securefiles.authz.peer import AuthzPeer


class AuthzClient(AuthzPeer):
    """What kms asks authz."""
