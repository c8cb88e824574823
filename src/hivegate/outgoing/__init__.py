"""Outgoing authentication: the credential each backend gets, never the caller's token.

`Credentials` turn a caller (`hivegate.outgoing.caller.Caller`, built by the gateway for each authenticated request
and passed explicitly, through the fronts and the backend sessions, to the transport that sends a message to a
backend) into the headers one backend request carries: none, a header of the gateway's own, a token exchanged at a
security token service (RFC 8693), or the caller's token from an upstream identity provider kept by the embedded
authorization server.
"""

from hivegate.outgoing.caller import Caller
from hivegate.outgoing.credentials import (
    Credentials,
    ExchangedToken,
    LoginRequired,
    NoCredentials,
    OutgoingAuthError,
    StaticHeader,
    UpstreamToken,
)

__all__ = [
    "Caller",
    "Credentials",
    "ExchangedToken",
    "LoginRequired",
    "NoCredentials",
    "OutgoingAuthError",
    "StaticHeader",
    "UpstreamToken",
]
