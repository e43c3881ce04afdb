// Identity providers for CFactory's single sign-on tests, on 127.0.0.1 only.
//
//   node provider.mjs --redirect URL [--redirect URL …] [--port N] [--forge]
//
// Without --forge it runs a real OpenID provider (the `oidc-provider` package) with its
// development login page (any password; the login names one of ACCOUNTS), consent granted
// for the registered client, and ID tokens that carry the person's email, name, groups and
// organisation. With --forge it runs a small stand-in provider whose next ID token is
// shaped on request (POST /__test/shape: another audience, issuer or nonce, an expiry in
// the past, another signing key, a tampered payload, no signature), whose key set can be
// changed (POST /__test/publish) and which counts key-set fetches (GET /__test/stats):
// the negative cases a real provider cannot be made to produce.
//
// Either way it prints one JSON line on stdout, {"issuer": "http://127.0.0.1:PORT"}, once
// it listens, and stops when its stdin (which must be a pipe) closes, or on SIGTERM.

import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

/** The registered client. */
export const CLIENT = { id: 'cfactory', secret: 'cfactory-test-secret' };

/** The people the real provider knows. */
export const ACCOUNTS = {
  alice: { email: 'alice@example.test', name: 'Alice Admin', groups: ['cfactory-admins', 'staff'], org: 'acme' },
  rita: { email: 'rita@example.test', name: 'Rita Reader', groups: ['cfactory-readers'], org: 'acme' },
  carol: { email: 'carol@example.test', name: 'Carol Marketing', groups: ['marketing'], org: 'acme' },
  olga: { email: 'olga@example.test', name: 'Olga Other', groups: ['cfactory-admins'], org: 'globex' },
};

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    redirect: { type: 'string', multiple: true, default: [] },
    forge: { type: 'boolean', default: false },
  },
});
if (args.redirect.length === 0) {
  console.error('provider.mjs: give at least one --redirect URL (the cockpit callback)');
  process.exit(2);
}

/** Reads a request body whole. */
function body(req) {
  return new Promise((done, fail) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => done(Buffer.concat(chunks).toString('utf8')));
    req.on('error', fail);
  });
}

function send(res, status, value, headers = {}) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  res.writeHead(status, { 'content-type': typeof value === 'string' ? 'text/plain' : 'application/json', ...headers });
  res.end(text);
}

/** The real provider, as a request handler for an issuer. */
async function realProvider(issuer) {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'real-1', alg: 'RS256', use: 'sig' };
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT.id,
        client_secret: CLIENT.secret,
        redirect_uris: args.redirect,
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'email', 'profile', 'groups', 'org'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
      org: ['org'],
    },
    // The person's claims go into the ID token itself, which is what CFactory reads.
    conformIdTokenClaims: false,
    async findAccount(_ctx, id) {
      const person = ACCOUNTS[id];
      if (!person) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: person.email, email_verified: true, name: person.name, groups: person.groups, org: person.org };
        },
      };
    },
    // The test client is first-party: consent is granted without a page.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid email profile groups org');
      await grant.save();
      return grant;
    },
    features: { devInteractions: { enabled: true } },
  });
  provider.on('server_error', (_ctx, err) => console.error(`provider: ${err.stack ?? err}`));
  return provider.callback();
}

/** The stand-in provider that forges ID tokens on request. */
async function forgingProvider(issuer) {
  const keys = {};
  for (const kid of ['k1', 'k2', 'k3']) {
    const pair = await generateKeyPair('RS256', { extractable: true });
    keys[kid] = { ...pair, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: 'RS256', use: 'sig' } };
  }
  let published = ['k1'];
  let shape = {};
  let jwksFetches = 0;
  const codes = new Map();

  const idToken = async (grant) => {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: shape.iss ?? issuer,
      sub: shape.sub ?? 'forged-person',
      aud: shape.aud ?? CLIENT.id,
      iat: now,
      exp: now + (shape.exp_in ?? 300),
      nonce: shape.nonce ?? grant.nonce,
      email: 'forged@example.test',
      name: 'Forged Person',
      groups: shape.groups ?? ['cfactory-admins'],
    };
    if (shape.unsigned) {
      const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
      return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
    }
    const kid = shape.key ?? 'k1';
    const token = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(keys[kid].privateKey);
    if (!shape.tamper) return token;
    const [header, , signature] = token.split('.');
    const changed = Buffer.from(JSON.stringify({ ...claims, groups: ['cfactory-admins', 'tampered'] })).toString('base64url');
    return `${header}.${changed}.${signature}`;
  };

  return async (req, res) => {
    const url = new URL(req.url, issuer);
    try {
      if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
        return send(res, 200, {
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
        });
      }
      if (req.method === 'GET' && url.pathname === '/jwks') {
        jwksFetches += 1;
        return send(res, 200, { keys: published.map((kid) => keys[kid].jwk) });
      }
      if (req.method === 'GET' && url.pathname === '/authorize') {
        const q = url.searchParams;
        if (q.get('client_id') !== CLIENT.id || !args.redirect.includes(q.get('redirect_uri'))) return send(res, 400, 'unknown client or redirect_uri');
        if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) return send(res, 400, 'PKCE (S256) is required');
        const code = randomBytes(16).toString('hex');
        codes.set(code, { nonce: q.get('nonce'), challenge: q.get('code_challenge'), redirect: q.get('redirect_uri') });
        const back = new URL(q.get('redirect_uri'));
        back.searchParams.set('code', code);
        back.searchParams.set('state', q.get('state'));
        res.writeHead(302, { location: back.toString() });
        return res.end();
      }
      if (req.method === 'POST' && url.pathname === '/token') {
        const form = new URLSearchParams(await body(req));
        const basic = `Basic ${Buffer.from(`${encodeURIComponent(CLIENT.id)}:${encodeURIComponent(CLIENT.secret)}`).toString('base64')}`;
        if (req.headers.authorization !== basic) return send(res, 401, { error: 'invalid_client' });
        const grant = codes.get(form.get('code'));
        codes.delete(form.get('code'));
        if (!grant || grant.redirect !== form.get('redirect_uri')) return send(res, 400, { error: 'invalid_grant' });
        const verifier = createHash('sha256').update(form.get('code_verifier') ?? '').digest('base64url');
        if (verifier !== grant.challenge) return send(res, 400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
        return send(res, 200, { access_token: randomBytes(16).toString('hex'), token_type: 'Bearer', expires_in: 300, id_token: await idToken(grant) });
      }
      if (req.method === 'POST' && url.pathname === '/__test/shape') {
        shape = JSON.parse(await body(req));
        return send(res, 200, { shape });
      }
      if (req.method === 'POST' && url.pathname === '/__test/publish') {
        published = JSON.parse(await body(req)).keys;
        return send(res, 200, { published });
      }
      if (req.method === 'GET' && url.pathname === '/__test/stats') {
        return send(res, 200, { jwks_fetches: jwksFetches });
      }
      return send(res, 404, 'not found');
    } catch (e) {
      console.error(`forging provider: ${e.stack ?? e}`);
      return send(res, 500, 'internal error');
    }
  };
}

let handle = null;
const server = createServer((req, res) => handle(req, res));
server.listen(Number(args.port), '127.0.0.1', async () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  handle = args.forge ? await forgingProvider(issuer) : await realProvider(issuer);
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
