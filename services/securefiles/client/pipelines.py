"""`client.pipelines`: pipelines, their permissions on files, and runs, as the client's own types."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import TYPE_CHECKING

from securefiles.client import convert
from securefiles.client.types import Pipeline, PipelinePermissions, Run, StartedRun

if TYPE_CHECKING:
    from securefiles.client.api import SecureFilesClient


class PipelinesClient:
    """Create, list and delete pipelines; authorize them on files; start, complete and list runs."""

    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def create(self, display_name: str) -> Pipeline:
        return convert.pipeline(self._api.create_pipeline(display_name))

    def list(self) -> builtins.list[Pipeline]:
        return [convert.pipeline(p) for p in self._api.list_pipelines()]

    def delete(self, pipeline: str) -> None:
        """Delete a pipeline (name or id) and its permissions; refused while one of its runs runs."""
        self._api.delete_pipeline(pipeline)

    def permissions(self, file: str) -> PipelinePermissions:
        """Which pipelines may use a file."""
        return convert.pipeline_permissions(self._api.pipeline_permissions(file))

    def set_permission(self, file: str, pipeline: str | None, authorized: bool) -> PipelinePermissions:
        """Authorize (or revoke) one pipeline on a file, or all pipelines when `pipeline` is None."""
        return convert.pipeline_permissions(self._api.set_pipeline_permission(file, pipeline, authorized))

    def start_run(self, pipeline: str, branch: str, requested_by: str = "", ttl_seconds: int | None = None
                  ) -> StartedRun:
        """Start a run by hand (orchestrator role); `ttl_seconds` None: the server's default lifetime."""
        return convert.started_run(self._api.start_run(pipeline, branch, requested_by, ttl_seconds))

    def complete_run(self, run: str) -> Run:
        """Complete a run given its resource name or, with a job token, its id."""
        return convert.run(self._api.complete_run(run))

    def runs(self, pipeline: str | None = None, running_only: bool = False) -> Iterator[Run]:
        """Runs of the project (or of one pipeline), newest first, following pages."""
        return map(convert.run, self._api.list_runs(pipeline, running_only))
