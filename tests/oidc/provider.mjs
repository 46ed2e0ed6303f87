// A real OpenID Connect provider for the tests: the certified npm package `oidc-provider`, on
// 127.0.0.1, started by tests/oidc_support.py (`oidc_provider(...)`).
//
// Environment:
//   PORT          port to listen on (0 or unset: a free one); the issuer is http://127.0.0.1:<port>
//   OIDC_CLIENTS  JSON list of {client_id, client_secret, redirect_uris: [...]}: confidential web
//                 clients, client_secret_basic (or client_secret_post), authorization code only
//   OIDC_USERS    JSON list of {sub, email, name, password, email_verified?, hd?, ...extra claims}
//
// stdout: one JSON line {"issuer": "...", "port": N} once listening; one line
// {"rotated": "<new kid>", "kids": [...]} after each key rotation (see below). Everything else
// (warnings, server errors) goes to stderr. It runs until killed or until stdin closes, so it
// never outlives the test that started it.
//
// Choices, so the tests see a provider like Entra ID or Google:
// - Own minimal interactions (devInteractions off). GET /interaction/:uid for the login prompt is
//   an HTML form POSTing to /interaction/:uid/login with fields `login` (the user's e-mail or
//   sub) and `password` and a <button type="submit">; a wrong login or password renders the form
//   again with status 401 and the text "Invalid login or password". The consent prompt (first
//   sign-in of a user at a client, or prompt=consent) is granted automatically: GET
//   /interaction/:uid grants every requested scope and claim and redirects on (303), no page.
// - PKCE is REQUIRED for every client (S256 only; oidc-provider never accepts `plain`).
// - conformIdTokenClaims is off: the ID token carries every claim of the granted scopes
//   (openid: sub + extra claims such as hd or school; email: email, email_verified; profile: name),
//   not only those the client could otherwise fetch from userinfo. Userinfo works as well.
// - A fresh 2048-bit RSA key (RS256) is made at every start. Rotation: SIGUSR2 or a line "rotate"
//   on stdin makes a new key that signs from then on, the JWKS listing it first and the old ones
//   after it; a line "rotate-drop-old" publishes only the new key.
// - Cookies are named op_session, op_interaction, op_interaction_resume (plus .sig), so that
//   they never collide with the relying party's cookies on the same host 127.0.0.1.
// - Authorization codes live 60 s and are single use; the state is kept in memory only.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as readline from 'node:readline';

import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]');
const users = JSON.parse(process.env.OIDC_USERS || '[]');
const STANDARD = new Set(['sub', 'email', 'email_verified', 'name', 'password']);
const extraClaims = [...new Set(users.flatMap((user) => Object.keys(user)))].filter(
  (key) => !STANDARD.has(key),
);
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

function freshKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
}

function userByLogin(login) {
  const wanted = String(login || '').trim().toLowerCase();
  return users.find(
    (user) => String(user.email || '').toLowerCase() === wanted || String(user.sub) === wanted,
  );
}

function claimsOf(user) {
  const { password, ...claims } = user;
  return { email_verified: true, ...claims, sub: String(user.sub) };
}

function configuration(keys) {
  return {
    clients: clients.map((client) => ({
      client_id: client.client_id,
      client_secret: client.client_secret,
      redirect_uris: client.redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: client.token_endpoint_auth_method || 'client_secret_basic',
    })),
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    responseTypes: ['code'],
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'profile'],
    claims: {
      openid: ['sub', ...extraClaims],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const user = users.find((candidate) => String(candidate.sub) === String(sub));
      if (!user) return undefined;
      return { accountId: String(user.sub), claims: async () => claimsOf(user) };
    },
    cookies: {
      keys: cookieKeys,
      names: {
        session: 'op_session',
        interaction: 'op_interaction',
        resume: 'op_interaction_resume',
      },
    },
    jwks: { keys },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<p id="error">${escape(out.error)}: ${escape(out.error_description)}</p>`);
    },
  };
}

function escape(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>${body}</body></html>`;
}

function loginPage(uid, error, login) {
  return page(
    'Sign in to the test identity provider',
    `${error ? `<p id="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
  <label>Login <input type="text" name="login" value="${escape(login)}" autofocus></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Sign in</button>
</form>`,
  );
}

function send(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(html);
}

async function formOf(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 65536) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function grantConsent(provider, req, res, details) {
  const { prompt, grantId, session, params } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scope] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scope.join(' '));
  }
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, {
    mergeWithLastSubmission: true,
  });
}

async function interaction(provider, req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (error) {
    send(res, 400, page('Error', `<p id="error">${escape(error.message)}</p>`));
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, page('Error', '<p id="error">interaction mismatch</p>'));
    return;
  }
  const name = details.prompt.name;
  if (req.method === 'GET' && !action) {
    if (name === 'login') send(res, 200, loginPage(uid, '', details.params.login_hint || ''));
    else if (name === 'consent') await grantConsent(provider, req, res, details);
    else send(res, 501, page('Error', `<p id="error">prompt ${escape(name)} not implemented</p>`));
    return;
  }
  if (req.method === 'POST' && action === 'login' && name === 'login') {
    const form = await formOf(req);
    const user = userByLogin(form.get('login'));
    if (!user || form.get('password') !== String(user.password)) {
      send(res, 401, loginPage(uid, 'Invalid login or password', form.get('login') || ''));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: String(user.sub) } }, {
      mergeWithLastSubmission: false,
    });
    return;
  }
  send(res, 405, page('Error', '<p id="error">method not allowed</p>'));
}

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(process.env.PORT || 0), HOST, resolve);
});
const { port } = server.address();
const issuer = `http://${HOST}:${port}`;

let keys = [freshKey()];

function makeProvider() {
  const provider = new Provider(issuer, configuration(keys));
  provider.on('server_error', (_ctx, error) => console.error('server_error', error));
  return { provider, handler: provider.callback() };
}

let current = makeProvider();
const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?\/?$/;

server.on('request', (req, res) => {
  const { provider, handler } = current;
  const path = new URL(req.url, issuer).pathname;
  const match = INTERACTION.exec(path);
  if (!match) {
    handler(req, res);
    return;
  }
  interaction(provider, req, res, match[1], match[2]).catch((error) => {
    console.error('interaction error', error);
    if (!res.headersSent) send(res, 500, page('Error', '<p id="error">server error</p>'));
  });
});

// Rotation swaps in a new Provider built on the new key set; the memory adapter's storage is
// shared by every Provider of this process, so sessions, grants and codes survive it.
function rotate(keepOld) {
  const key = freshKey();
  keys = keepOld ? [key, ...keys] : [key];
  current = makeProvider();
  process.stdout.write(`${JSON.stringify({ rotated: key.kid, kids: keys.map((k) => k.kid) })}\n`);
}

process.on('SIGUSR2', () => rotate(true));
const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line.trim() === 'rotate') rotate(true);
  else if (line.trim() === 'rotate-drop-old') rotate(false);
});
input.on('close', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));

process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
