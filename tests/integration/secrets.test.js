// Secrets are never written out: provider api_tokens, the admin token, client keys and a token
// inside a plugin's configuration must not appear in the gateway's stderr log, its access log
// (stdout), /metrics on either listener, the admin API's answers or any error body, however
// the traffic goes (client 401s, upstream 401 and 429, bad admin tokens, a failing plugin).
// The gateway runs at log level trace, where a leak would most likely be.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  REPO,
  adminRequest,
  fetchWithTimeout,
  freePort,
  postJson,
  runSluice,
  startGateway,
  startMock,
} from './lib/harness.js';
import { PLUGIN_DIR } from './lib/harness.js';

const TEST_WASM_DIR = process.env.SLUICE_TEST_WASM_DIR || path.join(REPO, 'build', 'tests', 'wasm');

// Each secret has a random part the grep looks for, so that a secret written in another form
// (without its prefix, after "Bearer ", inside JSON) is found too.
function secret(prefix) {
  const random = randomBytes(16).toString('hex');
  return { value: `${prefix}-${random}`, random };
}

const SECRETS = {
  providerGood: secret('sk-prov-good'),
  providerUnauthorized: secret('sk-prov-401'),
  providerLimited: secret('sk-prov-429'),
  providerSecond: secret('sk-prov-second'),
  admin: secret('admin-token'),
  clientKey: secret('sk-client-a'),
  clientKeyB: secret('sk-client-b'),
  pluginKey: secret('sk-plugin-auth'),
  pluginFailingToken: secret('sk-plugin-trap'),
};

const CHAT = { messages: [{ role: 'user', content: 'hi' }] };

describe('secrets never leak', { timeout: 60_000 }, () => {
  let mock;
  let gw;
  const seen = []; // [where, text]: every answer body and header the test received

  before(async () => {
    mock = await startMock({
      tokens: 3,
      // The good tokens pass; the 429 one is answered as rate-limited; any other gets 401.
      requireKeys: [SECRETS.providerGood.value, SECRETS.providerSecond.value],
      rejectKeys: [SECRETS.providerLimited.value],
    });
    const adminPort = await freePort();
    gw = await startGateway({
      threads: 2,
      log_level: 'trace',
      admin: { listen: `127.0.0.1:${adminPort}`, token: SECRETS.admin.value },
      keys: [
        { id: 'team-a', key: SECRETS.clientKey.value },
        { id: 'team-b', key: SECRETS.clientKeyB.value, models: ['gpt-*'] },
      ],
      providers: [
        {
          id: 'good',
          type: 'openai',
          endpoints: [mock.url],
          api_tokens: [SECRETS.providerGood.value, SECRETS.providerSecond.value],
        },
        {
          id: 'unauthorized',
          type: 'openai',
          endpoints: [mock.url],
          api_tokens: [SECRETS.providerUnauthorized.value],
          outlier: { consecutive_failures: 0 },
        },
        {
          id: 'limited',
          type: 'anthropic',
          endpoints: [mock.url],
          api_tokens: [SECRETS.providerLimited.value],
          outlier: { consecutive_failures: 0 },
        },
      ],
      routes: [
        { name: 'good', models: ['gpt-*'], provider: 'good' },
        { name: 'unauthorized', models: ['unauth-*'], provider: 'unauthorized' },
        { name: 'limited', models: ['limited-*'], provider: 'limited' },
        { name: 'guarded', models: ['guarded-*'], provider: 'good' },
        { name: 'failing', models: ['failing-*'], provider: 'good' },
      ],
      plugins: [
        {
          name: 'auth',
          path: path.join(PLUGIN_DIR, 'auth.wasm'),
          config: { keys: [SECRETS.pluginKey.value] },
          expose_credentials: true,
          attach: ['guarded'],
        },
        {
          name: 'failing',
          path: path.join(TEST_WASM_DIR, 'trap.wasm'),
          config: { token: SECRETS.pluginFailingToken.value },
          failure_policy: 'fail_closed',
          attach: ['failing'],
        },
      ],
    });
    gw.adminUrl = `http://127.0.0.1:${adminPort}`;
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  // A client request; records what came back.
  async function call(what, p, body, headers = {}) {
    const result = await postJson(`${gw.url}${p}`, body, { headers });
    seen.push([`${what}: body`, result.text]);
    seen.push([`${what}: headers`, JSON.stringify([...result.headers])]);
    return result;
  }

  async function admin(what, token, method, p, body) {
    const result = await adminRequest(gw, token, method, p, body);
    seen.push([`admin ${what}`, result.text]);
    return result;
  }

  const bearer = (s) => ({ authorization: `Bearer ${s.value}` });

  test('traffic of every kind, failures included, answers as expected', async () => {
    const ok = await call(
      'ok',
      '/v1/chat/completions',
      { model: 'gpt-4o', ...CHAT },
      bearer(SECRETS.clientKey),
    );
    assert.equal(ok.status, 200, ok.text);
    const streamed = await call(
      'streamed',
      '/v1/chat/completions',
      { model: 'gpt-4o', stream: true, ...CHAT },
      bearer(SECRETS.clientKey),
    );
    assert.equal(streamed.status, 200, streamed.text);

    // Client key failures: none, unknown (a near miss of a real key), a model not allowed.
    assert.equal(
      (await call('no key', '/v1/chat/completions', { model: 'gpt-4o', ...CHAT })).status,
      401,
    );
    // The real key with its last character changed.
    const last = SECRETS.clientKey.value.at(-1);
    const nearMiss = `${SECRETS.clientKey.value.slice(0, -1)}${last === '0' ? '1' : '0'}`;
    assert.equal(
      (
        await call(
          'wrong key',
          '/v1/chat/completions',
          { model: 'gpt-4o', ...CHAT },
          { authorization: `Bearer ${nearMiss}` },
        )
      ).status,
      401,
    );
    assert.equal(
      (
        await call(
          'wrong key (messages)',
          '/v1/messages',
          { model: 'gpt-4o', max_tokens: 8, ...CHAT },
          { 'x-api-key': nearMiss },
        )
      ).status,
      401,
    );
    assert.equal(
      (
        await call(
          'model not allowed',
          '/v1/chat/completions',
          { model: 'unauth-x', ...CHAT },
          bearer(SECRETS.clientKeyB),
        )
      ).status,
      403,
    );

    // The upstream refuses the provider token: 401, and 429 (rate-limited token).
    const unauthorized = await call(
      'upstream 401',
      '/v1/chat/completions',
      { model: 'unauth-x', ...CHAT },
      bearer(SECRETS.clientKey),
    );
    assert.ok(unauthorized.status >= 400, unauthorized.text);
    const limited = await call(
      'upstream 429',
      '/v1/messages',
      { model: 'limited-x', max_tokens: 8, ...CHAT },
      bearer(SECRETS.clientKey),
    );
    assert.ok(limited.status >= 400, limited.text);
    const limitedChat = await call(
      'upstream 429 (chat)',
      '/v1/chat/completions',
      { model: 'limited-x', stream: true, ...CHAT },
      bearer(SECRETS.clientKey),
    );
    assert.ok(limitedChat.status >= 400, limitedChat.text);
    // A 401 forced from the good upstream, and a bad gateway-side request.
    await call(
      'forced 401',
      '/v1/chat/completions',
      { model: 'gpt-4o', ...CHAT },
      {
        ...bearer(SECRETS.clientKey),
        'x-mock-status': '401',
      },
    );
    await call('malformed', '/v1/chat/completions', '{"model":', bearer(SECRETS.clientKey));

    // The auth plugin: its key passes, a wrong one is its 401.
    const guarded = await call(
      'plugin ok',
      '/v1/chat/completions',
      { model: 'guarded-x', ...CHAT },
      {
        ...bearer(SECRETS.clientKey),
        'x-api-key': SECRETS.pluginKey.value,
      },
    );
    assert.equal(guarded.status, 200, guarded.text);
    const refused = await call(
      'plugin 401',
      '/v1/chat/completions',
      { model: 'guarded-x', ...CHAT },
      {
        ...bearer(SECRETS.clientKey),
        'x-api-key': `${SECRETS.pluginKey.value}x`,
      },
    );
    assert.equal(refused.status, 401, refused.text);
    // A plugin that traps: 503 (fail_closed).
    const failing = await call(
      'plugin failure',
      '/v1/chat/completions',
      { model: 'failing-x', ...CHAT },
      bearer(SECRETS.clientKey),
    );
    assert.equal(failing.status, 503, failing.text);

    // /v1/models asks the providers with their tokens.
    const models = await fetchWithTimeout(`${gw.url}/v1/models`, {
      headers: bearer(SECRETS.clientKey),
    });
    seen.push(['models', await models.text()]);

    // The admin API: no token, a wrong one (a near miss), the right one.
    assert.equal((await admin('no token', undefined, 'GET', '/workers')).status, 401);
    assert.equal(
      (await admin('wrong token', `${SECRETS.admin.value}x`, 'GET', '/workers')).status,
      401,
    );
    assert.equal(
      (await admin('short token', SECRETS.admin.value.slice(0, 10), 'GET', '/keys')).status,
      401,
    );
    for (const p of ['/workers', '/keys', '/wasm', '/health']) {
      assert.equal((await admin(p, SECRETS.admin.value, 'GET', p)).status, 200, p);
    }
    assert.equal(
      (await admin('bad body', SECRETS.admin.value, 'POST', '/keys', '{"id":')).status,
      400,
    );
    assert.equal(
      (await admin('duplicate key', SECRETS.admin.value, 'POST', '/keys', { id: 'team-a' })).status,
      409,
    );
    assert.equal(
      (
        await admin('bad worker', SECRETS.admin.value, 'POST', '/workers', {
          provider: 'nope',
          url: 'x',
        })
      ).status >= 400,
      true,
    );
  });

  test('no configured secret appears in logs, metrics, admin answers or error bodies', async () => {
    const metrics = await fetchWithTimeout(`${gw.url}/metrics`);
    assert.equal(metrics.status, 200);
    seen.push(['/metrics (client listener)', await metrics.text()]);
    const adminMetrics = await admin('/metrics', SECRETS.admin.value, 'GET', '/metrics');
    assert.equal(adminMetrics.status, 200);
    assert.match(adminMetrics.text, /sluice_/);

    // Every request is logged before the grep.
    await gw.waitForLog((l) => l.status === 503);
    const places = [
      ...seen,
      ['stderr (log)', gw.stderr],
      ['stdout (access log)', gw.stdoutLines.join('\n')],
      [
        'sluice check',
        (() => {
          const r = runSluice(['check', '--config', gw.configPath]);
          return `${r.stdout}\n${r.stderr}`;
        })(),
      ],
    ];
    // The log did record the failures (the grep reads real text, not an empty log).
    assert.match(gw.stderr, /trap|failing/);
    assert.ok(gw.accessLog().length >= 10, `only ${gw.accessLog().length} access log lines`);

    const leaks = [];
    for (const [name, s] of Object.entries(SECRETS)) {
      for (const [where, text] of places) {
        if (text.includes(s.random)) {
          const at = text.indexOf(s.random);
          leaks.push(`${name} in ${where}: …${text.slice(Math.max(0, at - 80), at + 40)}…`);
        }
      }
    }
    assert.deepEqual(leaks, []);
  });
});
