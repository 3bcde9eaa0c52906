"""gRPC face of identity from outside (mixed into the authz servicer): trusts and the token
exchange for jobs, sign-in for people."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.protobuf.duration_pb2 import Duration

from securefiles.authz.domain.job_identity import JOB_TOKEN_TYPE, JobIdentity
from securefiles.authz.domain.model import Run
from securefiles.authz.domain.service import Authorization
from securefiles.authz.domain.sign_in import SignIn
from securefiles.authz.domain.trusts import Trust
from securefiles.authz.v1 import authz_pb2
from securefiles.common.call_context import audit_note, current_principal, principal_var
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.errors import FailedPrecondition
from securefiles.common.paging import keyset_page, sort_key
from securefiles.common.principal import Principal
from securefiles.common.proto_time import duration_seconds, to_timestamp
from securefiles.common.resource_names import parse_project, pipeline_name, trust_name
from securefiles.common.unit_of_work import UnitsOfWork


def run_message(r: Run) -> authz_pb2.Run:
    return authz_pb2.Run(
        name=r.name, run_id=r.run_id, pipeline=pipeline_name(r.project, r.pipeline_id), branch=r.branch,
        requested_by=r.requested_by, state=authz_pb2.Run.State.Value(f"STATE_{r.state.value}"),
        create_time=to_timestamp(r.created_at), expire_time=to_timestamp(r.expire_at),
        complete_time=to_timestamp(r.completed_at),
        trust=trust_name(r.project, r.trust_id) if r.trust_id else "", asserted_by=r.asserted_by,
        claims=dict(r.claims),
    )


def trust_message(t: Trust) -> authz_pb2.Trust:
    return authz_pb2.Trust(
        name=t.name, trust_id=t.trust_id, display_name=t.display_name,
        pipeline=pipeline_name(t.project, t.pipeline_id), issuer=t.issuer, audience=t.audience,
        bound_claims=dict(t.bound_claims), branch_claim=t.branch_claim, ref_type_claim=t.ref_type_claim,
        run_claims=list(t.run_claims), requester_claim=t.requester_claim,
        max_ttl=Duration(seconds=t.max_ttl_seconds), jwks=t.static_jwks, ca_certificates=t.ca_pem,
        created_by=t.created_by, create_time=to_timestamp(t.created_at),
    )


def _trust_from(message: authz_pb2.Trust) -> Trust:
    return Trust(
        project="", trust_id=0, display_name=message.display_name, pipeline_id=0, issuer=message.issuer,
        audience=message.audience, bound_claims=tuple(sorted(message.bound_claims.items())),
        branch_claim=message.branch_claim, ref_type_claim=message.ref_type_claim,
        run_claims=tuple(message.run_claims), requester_claim=message.requester_claim,
        max_ttl_seconds=duration_seconds(message.max_ttl, 3600), static_jwks=message.jwks,
        ca_pem=message.ca_certificates,
    )


class IdentityServicerMixin:
    _authz: Authorization
    _db: DatabaseThreads
    _changes: UnitsOfWork

    @property
    def _jobs(self) -> JobIdentity:
        if self._authz.jobs is None:
            raise FailedPrecondition("job identity is not configured", reason="TRUSTS_DISABLED")
        return self._authz.jobs

    @property
    def _sign_in(self) -> SignIn:
        if self._authz.sign_in is None:
            raise FailedPrecondition("sign-in is not configured", reason="SIGN_IN_NOT_CONFIGURED")
        return self._authz.sign_in

    async def ExchangeToken(self, request: authz_pb2.ExchangeTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
                            ) -> authz_pb2.ExchangeTokenResponse:
        exchanged = await self._jobs.exchange(request.subject_token, request.subject_token_type, request.project,
                                              duration_seconds(request.ttl, 0))
        run = exchanged.run
        # The entry names the job, the trust and the signed claims it came from.
        principal_var.set(Principal("job", f"job:{run.name}"))
        audit_note(run.name, trust=exchanged.trust.name, pipeline=exchanged.pipeline.display_name,
                   branch=run.branch, requester=run.requested_by or "-",
                   claims=",".join(f"{k}={v}" for k, v in run.claims))
        response = authz_pb2.ExchangeTokenResponse(
            access_token=exchanged.token, issued_token_type=JOB_TOKEN_TYPE, token_type="Bearer", run=run_message(run),
            trust=exchanged.trust.name, pipeline_display_name=exchanged.pipeline.display_name)
        response.expire_time.FromSeconds(exchanged.expire_at)
        return response

    async def CreateTrust(self, request: authz_pb2.CreateTrustRequest, context: grpc.aio.ServicerContext[Any, Any]
                          ) -> authz_pb2.Trust:
        created = await self._changes.run_noted(
            lambda t: audit_note(t.name, issuer=t.issuer, audience=t.audience, pipeline=str(t.pipeline_id),
                                 bound_claims=",".join(f"{c}={g}" for c, g in t.bound_claims)),
            self._jobs.create_trust, current_principal(), request.parent, _trust_from(request.trust),
            request.trust.pipeline)
        return trust_message(created)

    async def GetTrust(self, request: authz_pb2.GetTrustRequest, context: grpc.aio.ServicerContext[Any, Any]
                       ) -> authz_pb2.Trust:
        return trust_message(await self._db.run(self._jobs.get_trust, current_principal(), request.name))

    async def ListTrusts(self, request: authz_pb2.ListTrustsRequest, context: grpc.aio.ServicerContext[Any, Any]
                         ) -> authz_pb2.ListTrustsResponse:
        parse_project(request.parent)
        trusts = await self._db.run(self._jobs.list_trusts, current_principal(), request.parent)
        page, token = keyset_page(trusts, lambda t: sort_key(t.trust_id), request.parent, "", request.page_size,
                                  request.page_token)
        return authz_pb2.ListTrustsResponse(trusts=[trust_message(t) for t in page], next_page_token=token)

    async def DeleteTrust(self, request: authz_pb2.DeleteTrustRequest, context: grpc.aio.ServicerContext[Any, Any]
                          ) -> empty_pb2.Empty:
        await self._changes.run_noted(lambda t: audit_note(t.name, issuer=t.issuer), self._jobs.delete_trust,
                                      current_principal(), request.name)
        return empty_pb2.Empty()

    async def GetSignInConfig(self, request: authz_pb2.GetSignInConfigRequest,
                              context: grpc.aio.ServicerContext[Any, Any]) -> authz_pb2.SignInConfig:
        settings = self._authz.identity.sign_in
        if settings is None:
            return authz_pb2.SignInConfig(enabled=False)
        return authz_pb2.SignInConfig(enabled=True, issuer=settings.source.issuer, client_id=settings.client_id,
                                      scopes=list(settings.scopes))

    async def SignIn(self, request: authz_pb2.SignInRequest, context: grpc.aio.ServicerContext[Any, Any]
                     ) -> authz_pb2.SignInResponse:
        session = await self._sign_in.sign_in(request.id_token)  # verifies; writes nothing
        principal_var.set(Principal("user", session.principal))  # the entry names who signed in
        audit_note(session.principal, groups=",".join(session.groups) or "-", token_id=session.token_id)
        await self._changes.run(self._authz.remember_session, session)  # the session and its entry commit together
        response = authz_pb2.SignInResponse(token=session.token, principal=session.principal,
                                            groups=list(session.groups))
        response.expire_time.FromSeconds(session.expire_at)
        return response
