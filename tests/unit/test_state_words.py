"""Authz's enum values carry their prefix on the wire and in `--output json` (issue #18 item 5);
tables and messages show the word people read. Each state-bearing type of the client says both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from securefiles.authz.v1 import authz_pb2
from securefiles.cli.output import json_object
from securefiles.client import convert

STATES = [
    (authz_pb2.Run(state=authz_pb2.Run.STATE_COMPLETED), convert.run, "STATE_COMPLETED", "COMPLETED"),
    (authz_pb2.AccessRequest(state=authz_pb2.AccessRequest.STATE_GRANTED), convert.access_request,
     "STATE_GRANTED", "GRANTED"),
    (authz_pb2.CheckSuite(state=authz_pb2.CHECK_STATE_PENDING), convert.check_suite, "CHECK_STATE_PENDING",
     "PENDING"),
    (authz_pb2.Approval(state=authz_pb2.CHECK_STATE_REJECTED), convert.approval, "CHECK_STATE_REJECTED",
     "REJECTED"),
]


@pytest.mark.parametrize(("message", "converted", "json_value", "word"), STATES,
                         ids=[m.DESCRIPTOR.name for m, *_ in STATES])
def test_json_keeps_the_protos_enum_name_and_people_read_the_word(
        message: Message, converted: Callable[[Any], Any], json_value: str, word: str) -> None:
    value = converted(message)
    assert json_object(value)["state"] == json_format.MessageToDict(message)["state"] == json_value
    assert value.state_word == word


def test_a_check_results_state_reads_as_its_word() -> None:
    suite = convert.check_suite(authz_pb2.CheckSuite(results=[authz_pb2.CheckResult(
        state=authz_pb2.CHECK_STATE_APPROVED)]))
    assert suite.results[0].state == "CHECK_STATE_APPROVED" and suite.results[0].state_word == "APPROVED"
