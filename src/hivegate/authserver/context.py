"""The state the parts of the authorization server share, passed explicitly to each: `ServerContext` holds its
config, its signing keys (access tokens), its HMAC keys (codes and refresh tokens), its store (which seals the
credentials it holds, see `sealing`), the sealer for fields sealed one by one, and its clock.
`AuthorizationServer` builds one and hands it to the login flow (`flow`) and to the grants (`grants`); the clock is
read on every use, so replacing it (tests move time) reaches all of them at once (token exchange and the revocation
cache keep the clocks they were built with). Also the prefixes of the two opaque token kinds (`keys.HMACKeys`):
authorization codes and refresh tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.sealing import Sealer
from hivegate.authserver.settings import AuthServerConfig
from hivegate.storage.base import KeyValueStore

__all__ = ["CODE_PREFIX", "REFRESH_PREFIX", "ServerContext"]

CODE_PREFIX = "hgc"
REFRESH_PREFIX = "hgr"


@dataclass(slots=True)
class ServerContext:
    cfg: AuthServerConfig
    keys: SigningKeys
    hmac: HMACKeys
    store: KeyValueStore
    sealer: Sealer
    clock: Callable[[], float]

    @property
    def issuer(self) -> str:
        return self.cfg.issuer
