"""Outgoing authentication: the credential each backend gets, never the caller's token.

`Credentials` turn the current caller (`hivegate.outgoing.caller.current_caller`, set by the gateway for each
authenticated request) into the headers one backend request carries: none, a header of the gateway's own, a token
exchanged at a security token service (RFC 8693), or the caller's token from an upstream identity provider kept by
the embedded authorization server.
"""

from hivegate.outgoing.caller import Caller, current_caller
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
    "current_caller",
]
