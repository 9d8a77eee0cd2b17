// A relying party built on openid-client (OpenID Certified), driven by the Rust test over
// stdin/stdout: it prints the authorization URL, reads the callback URL the "browser" reached,
// then redeems and validates everything and prints what it saw as one JSON line.
//   node openid-client-rp.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI POST_LOGOUT_URI
import * as client from 'openid-client';
import * as readline from 'node:readline';

const [issuer, clientId, clientSecret, redirectUri, postLogoutUri] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

try {
  // Plain http is only for this loopback test; the library refuses it otherwise.
  const config = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, {
    execute: [client.allowInsecureRequests],
  });
  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email profile',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  emit({ authorization_url: url.href });

  const callback = new URL(await nextLine());
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const refreshedClaims = refreshed.claims();
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: postLogoutUri,
    state: 'bye',
  });
  emit({
    claims,
    userinfo,
    refreshed_sub: refreshedClaims.sub,
    refresh_rotated: refreshed.refresh_token !== tokens.refresh_token,
    access_token: refreshed.access_token,
    end_session_url: endSession.href,
  });
  process.exit(0);
} catch (e) {
  emit({ error: `${e.name}: ${e.message}${e.code ? ' ' + e.code : ''}` });
  process.exit(1);
}
