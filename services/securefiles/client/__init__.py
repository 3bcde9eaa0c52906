"""Python client for Securefiles: build custom pipeline tasks and tools on it.

    from securefiles.client import SecureFilesClient
    with SecureFilesClient.from_environment(job=True) as client:
        path = client.download_secure_file("signing.p12", Path(os.environ["RUNNER_TEMP"])).path

Errors are typed (`PermissionDenied`, `NotFound`, …) and carry the server's `reason`.
"""

from securefiles.client.api import SecureFilesClient
from securefiles.client.config import ClientConfig, load_config
from securefiles.client.download import DownloadedFile
from securefiles.common.errors import (
    AlreadyExists,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SecureFilesError,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AlreadyExists", "ClientConfig", "DataLoss", "DeadlineExceeded", "DownloadedFile", "FailedPrecondition",
    "InvalidArgument", "NotFound", "PermissionDenied", "ResourceExhausted", "SecureFilesClient",
    "SecureFilesError", "Unauthenticated", "Unavailable", "load_config",
]
