"""The grants of the token endpoint (`/oauth/token`), one module each: `authorization_code` (redeeming the code a
login ended with), `refresh` (rotating refresh tokens) and `token_exchange` (RFC 8693); with them `issue`, minting the
access and refresh tokens of the first two, `client_auth`, authenticating the client of a token or revocation
request, and `revoke`, revoking a token family (a replayed code, a reused refresh token) and RFC 7009's
`/oauth/revoke`.
"""
