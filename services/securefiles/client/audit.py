"""`client.audit`: every service's audit log, read and verified, as the client's own types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from securefiles.audit.v1 import audit_pb2
from securefiles.client import convert
from securefiles.client.types import AuditEvent, AuditHead, AuditPage, AuditVerification

if TYPE_CHECKING:
    from securefiles.client.api import SecureFilesClient


class AuditClient:
    """Services are named as `targets()` names them: storage, authz, kms-<region>."""

    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def targets(self) -> dict[str, str]:
        """Service name -> endpoint of every audit log."""
        return self._api.audit_targets()

    def events(self, service: str, resource_prefix: str = "", after_sequence: int = 0) -> Iterator[AuditEvent]:
        """`service`'s entries, oldest first, following pages."""
        return map(convert.audit_event, self._api.list_audit_events(service, resource_prefix, after_sequence))

    def page(self, service: str, page_token: str = "", resource_prefix: str = "", principal: str = "",
             page_size: int = 100) -> AuditPage:
        """One page of `service`'s entries, oldest first (a console's screenful)."""
        return convert.audit_page(self._api.audit_page(service, page_token, resource_prefix, principal, page_size))

    def latest_witnessed_head(self, service: str) -> AuditHead | None:
        """The newest head of `service`'s chain that any other service witnessed."""
        head = self._api.latest_witnessed_head(service)
        return convert.audit_head(head) if head is not None else None

    def verify(self, service: str, witnessed: AuditHead | None = None) -> AuditVerification:
        """Check `service`'s chain, and that it still holds the head another service witnessed."""
        head = audit_pb2.AuditHead(sequence=witnessed.sequence, hash=witnessed.hash) if witnessed else None
        return convert.audit_verification(self._api.verify_audit_log(service, head))
