"""Client calls for identity from outside: trusts, the token exchange, sign-in (mixed into
`SecureFilesClient`)."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.client.paging import all_pages
from securefiles.client.transport import Transport
from securefiles.common.resource_names import project_name, trust_name

JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"


@dataclass(frozen=True)
class TrustSpec:
    """What `trusts add` asks for (presets fill it in for GitHub and GitLab)."""

    issuer: str
    audience: str
    bound_claims: dict[str, str]
    branch_claim: str = ""
    ref_type_claim: str = ""
    run_claims: tuple[str, ...] = ()
    requester_claim: str = ""
    max_ttl_seconds: int = 3600
    jwks: str = ""
    ca_certificates: str = ""


class IdentityCalls:
    project: str
    _transport: Transport

    @property
    def _authz(self) -> authz_pb2_grpc.AuthorizationServiceStub:
        raise NotImplementedError  # the client's stub property

    def _trust_name(self, trust: str) -> str:
        return trust if trust.startswith("projects/") else trust_name(self.project, trust)

    def create_trust(self, name: str, pipeline: str, spec: TrustSpec) -> authz_pb2.Trust:
        trust = authz_pb2.Trust(
            display_name=name, pipeline=pipeline, issuer=spec.issuer, audience=spec.audience,
            bound_claims=spec.bound_claims, branch_claim=spec.branch_claim, ref_type_claim=spec.ref_type_claim,
            run_claims=list(spec.run_claims), requester_claim=spec.requester_claim,
            max_ttl=Duration(seconds=spec.max_ttl_seconds), jwks=spec.jwks, ca_certificates=spec.ca_certificates)
        return self._transport.call(self._authz.CreateTrust, authz_pb2.CreateTrustRequest(
            parent=project_name(self.project), trust=trust))

    def list_trusts(self) -> list[authz_pb2.Trust]:
        request = authz_pb2.ListTrustsRequest(parent=project_name(self.project))
        return list(all_pages(lambda r: self._transport.call(self._authz.ListTrusts, r), request, "trusts").trusts)

    def get_trust(self, trust: str) -> authz_pb2.Trust:
        return self._transport.call(self._authz.GetTrust, authz_pb2.GetTrustRequest(name=self._trust_name(trust)))

    def delete_trust(self, trust: str) -> None:
        self._transport.call(self._authz.DeleteTrust, authz_pb2.DeleteTrustRequest(name=self._trust_name(trust)))

    def exchange_token(self, oidc_token: str, project: str = "") -> authz_pb2.ExchangeTokenResponse:
        """A CI provider's OIDC token for a job token (no token of ours needed)."""
        return self._transport.call(self._authz.ExchangeToken, authz_pb2.ExchangeTokenRequest(
            subject_token=oidc_token, subject_token_type=JWT_TOKEN_TYPE,
            project=project_name(project) if project else ""))

    def sign_in_config(self) -> authz_pb2.SignInConfig:
        return self._transport.call(self._authz.GetSignInConfig, authz_pb2.GetSignInConfigRequest())

    def sign_in(self, id_token: str) -> authz_pb2.SignInResponse:
        return self._transport.call(self._authz.SignIn, authz_pb2.SignInRequest(id_token=id_token))

    def list_tokens(self, subject: str = "", include_ended: bool = False) -> list[authz_pb2.IssuedToken]:
        return list(self._transport.call(self._authz.ListTokens, authz_pb2.ListTokensRequest(
            subject=subject, include_ended=include_ended)).tokens)

    def revoke_token(self, token_id: str) -> authz_pb2.IssuedToken:
        name = token_id if token_id.startswith("tokens/") else f"tokens/{token_id}"
        return self._transport.call(self._authz.RevokeToken, authz_pb2.RevokeTokenRequest(name=name))
