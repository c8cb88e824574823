"""RFC 8693 token exchange at the embedded authorization server: who may exchange, which subject tokens are trusted,
and what the issued token says."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from hivegate.authn.jwks import StaticKeys
from hivegate.authn.jwt import verify_signature
from hivegate.authserver.clients import Client
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.service import AuthorizationServer, Params
from hivegate.authserver.settings import TOKEN_EXCHANGE_GRANT, AuthServerConfig, Lifespans, UpstreamConfig
from hivegate.authserver.upstream.base import UpstreamIdentity, UpstreamTokens
from hivegate.authserver.upstream.idtoken import IDTokenValidator
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

ISSUER = "https://sts.example.com"
IDP = "https://idp.example.com"
API = "https://api.example.com"  # an API of the IdP's whose tokens the server accepts
BACKEND = "https://backend.example.com/mcp"
OTHER = "https://other.example.com/mcp"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"


class Clients:
    def __init__(self, *clients: Client) -> None:
        self._clients = {c.client_id: c for c in clients}

    async def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    async def register(self, metadata: Any, *, remote: str) -> tuple[Client, dict[str, Any]]:
        raise NotImplementedError


class TrustedIdP:
    """An upstream OpenID provider whose tokens are signed with a real RSA key; this server is its client
    `sts-client`, and access tokens for `API` are accepted too. `token()` makes an access token for `API`."""

    name = "corp"
    client_id = "sts-client"

    def __init__(self, *, accepted: tuple[str, ...] = (API,), clock_skew: float = 60.0) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "idp-1", "alg": "RS256"})
        self._keys = StaticKeys({"keys": [self.key.as_dict(private=False)]})
        self.accepted_audiences = accepted
        self._id_tokens = IDTokenValidator(self._keys, issuer=IDP, client_id=self.client_id, clock_skew=clock_skew)

    @property
    def issuer(self) -> str:
        return IDP

    def token(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": IDP, "sub": "alice", "aud": API, "iat": now, "exp": now + 600, **claims}
        return jwt.encode({"alg": "RS256", "kid": "idp-1", **(header or {})}, body, self.key)

    async def signed_claims(self, token: str) -> dict[str, Any]:
        return await verify_signature(token, self._keys)

    def check_id_token(self, claims: dict[str, Any]) -> None:
        self._id_tokens.check(claims, nonce=None)

    async def authorization_url(self, *, state: str, code_challenge: str, nonce: str, redirect_uri: str) -> str:
        raise NotImplementedError

    async def exchange_code(
        self, code: str, *, code_verifier: str, nonce: str, redirect_uri: str
    ) -> tuple[UpstreamTokens, UpstreamIdentity]:
        raise NotImplementedError

    async def refresh(self, refresh_token: str) -> tuple[UpstreamTokens, UpstreamIdentity | None]:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


SECRET = "s3cret-for-gateway-a"


def sts(idp: TrustedIdP, *, clock_skew: float = 60.0) -> AuthorizationServer:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    gateway = Client("gateway-a", (), "static", token_endpoint_auth_method="client_secret_basic",
                     secret_hash=digest, grant_types=(TOKEN_EXCHANGE_GRANT,))  # fmt: skip
    other = Client("web-app", (), "static", token_endpoint_auth_method="client_secret_basic",
                   secret_hash=digest)  # fmt: skip
    cfg = AuthServerConfig(
        issuer=ISSUER,
        upstreams=(UpstreamConfig("corp", "oidc", "sts-client", issuer_url=IDP),),
        lifespans=Lifespans(),
    )
    return AuthorizationServer(
        cfg,
        keys=SigningKeys.from_pems([]),
        hmac_keys=HMACKeys.from_config([b"k" * 32]),
        store=MemoryStore(),
        clients=Clients(gateway, other),
        upstreams=[idp],
        audiences=[BACKEND, OTHER],
        clock_skew=clock_skew,
    )


async def exchange(s: AuthorizationServer, client: str = "gateway-a", **form: str) -> dict[str, Any]:
    values = {"grant_type": TOKEN_EXCHANGE_GRANT, "subject_token_type": ACCESS, "audience": BACKEND, **form}
    params = Params({k: [v] for k, v in values.items() if v != "<absent>"})
    return await s.token(params, (client, SECRET))


def claims_of(s: AuthorizationServer, token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, KeySet.import_key_set(s.keys.jwks())).claims)


async def test_an_upstream_access_token_becomes_a_token_for_the_backend_audience() -> None:
    idp = TrustedIdP()
    s = sts(idp)
    subject = idp.token(email="alice@example.com", groups=["devs"], scope="openid email")
    answer = await exchange(s, subject_token=subject, scope="openid")
    assert answer["issued_token_type"] == ACCESS
    assert answer["token_type"] == "Bearer"
    assert "refresh_token" not in answer
    claims = claims_of(s, answer["access_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == BACKEND
    assert claims["sub"] == "alice"
    assert claims["act"] == {"sub": "gateway-a"}
    assert claims["client_id"] == "gateway-a"
    assert claims["groups"] == ["devs"]
    assert claims["email"] == "alice@example.com"
    assert claims["scope"] == "openid"
    assert claims["exp"] <= int(time.time()) + 600  # never outlives the subject token


async def test_its_own_tokens_can_be_exchanged_for_another_audience() -> None:
    idp = TrustedIdP()
    s = sts(idp)
    first = await exchange(s, subject_token=idp.token())
    second = await exchange(s, subject_token=first["access_token"], audience=OTHER)
    assert claims_of(s, second["access_token"])["aud"] == OTHER


async def test_an_id_token_must_have_been_issued_to_this_server() -> None:
    idp = TrustedIdP()
    s = sts(idp)
    ours = await exchange(s, subject_token=idp.token(aud="sts-client"), subject_token_type=ID_TOKEN)
    assert claims_of(s, ours["access_token"])["sub"] == "alice"
    with pytest.raises(OAuthError) as refused:
        await exchange(s, subject_token=idp.token(aud="someone-else"), subject_token_type=ID_TOKEN)
    assert refused.value.error == "invalid_grant"


@pytest.mark.parametrize(
    ("subject", "form", "error"),
    [
        ("foreign", {}, "invalid_grant"),
        ("expired", {}, "invalid_grant"),
        ("forged", {}, "invalid_grant"),
        ("good", {"audience": "https://unknown.example/mcp"}, "invalid_target"),
        ("good", {"resource": OTHER}, "invalid_target"),  # audience and resource name two targets
        ("good", {"scope": "admin:everything"}, "invalid_scope"),
        ("good", {"subject_token_type": "urn:x:saml"}, "invalid_request"),
        ("good", {"subject_token_type": "<absent>"}, "invalid_request"),
        ("good", {"actor_token": "x", "actor_token_type": ACCESS}, "invalid_request"),
        ("good", {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request"),
    ],
)
async def test_bad_exchanges_get_the_rfc_error(subject: str, form: dict[str, str], error: str) -> None:
    idp = TrustedIdP()
    s = sts(idp)
    other_key = RSAKey.generate_key(2048, parameters={"kid": "idp-1", "alg": "RS256"})
    now = int(time.time())
    tokens = {
        "good": idp.token(),
        "foreign": jwt.encode(
            {"alg": "RS256", "kid": "x"}, {"iss": "https://evil.example", "sub": "a", "exp": now + 60}, other_key
        ),
        "expired": idp.token(exp=now - 61),  # past the default skew of 60 s
        "forged": jwt.encode({"alg": "RS256", "kid": "idp-1"}, {"iss": IDP, "sub": "a", "exp": now + 60}, other_key),
    }
    with pytest.raises(OAuthError) as refused:
        await exchange(s, subject_token=tokens[subject], **form)
    assert refused.value.error == error


async def test_only_confidential_clients_allowed_the_grant_may_exchange() -> None:
    idp = TrustedIdP()
    s = sts(idp)
    with pytest.raises(OAuthError) as refused:
        await exchange(s, client="web-app", subject_token=idp.token())
    assert refused.value.error == "unauthorized_client"
    params = Params({"grant_type": [TOKEN_EXCHANGE_GRANT], "subject_token": [idp.token()],
                     "subject_token_type": [ACCESS]})  # fmt: skip
    with pytest.raises(OAuthError) as wrong_secret:
        await s.token(params, ("gateway-a", "wrong"))
    assert wrong_secret.value.error == "invalid_client"


def test_metadata_advertises_the_grant() -> None:
    assert TOKEN_EXCHANGE_GRANT in sts(TrustedIdP()).metadata()["grant_types_supported"]


async def test_an_exchange_takes_only_the_scopes_its_subject_holds() -> None:
    idp = TrustedIdP()
    s = sts(idp)
    subject = idp.token(scope="openid email")

    async def scopes_of(**form: str) -> str:
        answer = await exchange(s, subject_token=subject, **form)
        return str(claims_of(s, answer["access_token"])["scope"])

    assert await scopes_of() == "openid email"  # without `scope`: what the subject holds
    assert await scopes_of(scope="email") == "email"  # narrowed
    for wider in ("openid profile", "offline_access"):  # supported by the server, not held by the subject
        with pytest.raises(OAuthError) as refused:
            await exchange(s, subject_token=subject, scope=wider)
        assert refused.value.error == "invalid_scope"
        assert "is not held by the subject token" in refused.value.description
    # Okta and Entra ID write the scopes as a list in `scp`
    assert (
        claims_of(s, (await exchange(s, subject_token=idp.token(scp=["openid"])))["access_token"])["scope"] == "openid"
    )
    with pytest.raises(OAuthError):
        await exchange(s, subject_token=idp.token(scp=["openid"]), scope="email")
    # a subject without scopes gets none, and cannot ask for any
    assert claims_of(s, (await exchange(s, subject_token=idp.token()))["access_token"])["scope"] == ""
    with pytest.raises(OAuthError):
        await exchange(s, subject_token=idp.token(), scope="openid")


@pytest.mark.parametrize(
    ("claim", "message"),
    [("nbf", "Token is not valid yet ('nbf')"), ("iat", "Token was issued in the future ('iat')")],
)
async def test_a_subject_token_from_the_future_is_refused(claim: str, message: str) -> None:
    idp = TrustedIdP()
    s = sts(idp)
    later = int(time.time()) + 300
    with pytest.raises(OAuthError) as refused:
        await exchange(s, subject_token=idp.token(**{claim: later}))
    assert refused.value.error == "invalid_grant"
    assert refused.value.description == f"the subject token is not valid: {message}"
