"""What a refused call carried: its code, ErrorInfo reason and BadRequest field."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def refusal(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, str]:
    """(code, ErrorInfo reason, BadRequest field or '') of a refused call."""
    status = rpc_status.from_call(error)
    assert status is not None
    reason, field = "", ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            field = bad.field_violations[0].field
    return error.code(), reason, field
