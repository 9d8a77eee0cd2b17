"""A relying party built on authlib, driven by the Rust test over stdin/stdout.

Prints the authorization URL, reads the callback URL, then redeems the code, validates the ID
token against the provider's JWKS, fetches UserInfo, refreshes, and prints one JSON line.
    python authlib_rp.py ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
"""
import json
import sys

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    issuer, client_id, client_secret, redirect_uri = sys.argv[1:5]
    meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
    if meta["issuer"] != issuer:
        raise RuntimeError("issuer mismatch")
    session = OAuth2Session(
        client_id,
        client_secret,
        scope="openid email profile",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",
    )
    verifier = generate_token(48)
    nonce = generate_token(20)
    url, state = session.create_authorization_url(
        meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier
    )
    emit({"authorization_url": url})

    callback = sys.stdin.readline().strip()
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"],
        keys,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": issuer}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate()
    userinfo = session.get(meta["userinfo_endpoint"]).json()
    refreshed = session.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    emit(
        {
            "claims": dict(claims),
            "userinfo": userinfo,
            "refresh_rotated": refreshed["refresh_token"] != token["refresh_token"],
            "refreshed_has_id_token": "id_token" in refreshed,
        }
    )


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report any failure as one line for the test to show
        emit({"error": f"{type(e).__name__}: {e}"})
        sys.exit(1)
