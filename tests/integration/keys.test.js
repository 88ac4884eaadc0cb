// Client API keys: config keys, admin-created keys, revocation, persistence in state_dir.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  adminRequest,
  fetchWithTimeout,
  freePort,
  postJson,
  startGateway,
  startMock,
} from './lib/harness.js';

const ADMIN = 'admin-token-for-keys-0123456789';
const TEAM_KEY = 'sk-team-a-0123456789abcdef';

const admin = (gateway, method, p, body) => adminRequest(gateway, ADMIN, method, p, body);

async function startWithKeys(mock, stateDir, extra = {}) {
  const adminPort = await freePort();
  const gateway = await startGateway({
    threads: 2,
    admin: { listen: `127.0.0.1:${adminPort}`, token: ADMIN },
    state_dir: stateDir,
    keys: [{ id: 'team-a', key: TEAM_KEY, models: ['gpt-*'] }],
    providers: [{ id: 'mock', type: 'openai', endpoints: [mock.url] }],
    routes: [{ name: 'all', models: ['*'], provider: 'mock' }],
    ...extra,
  });
  gateway.adminUrl = `http://127.0.0.1:${adminPort}`;
  return gateway;
}

const chat = (gateway, key, model = 'gpt-4o', header = 'authorization') =>
  postJson(
    `${gateway.url}/v1/chat/completions`,
    { model, messages: [{ role: 'user', content: 'hi' }] },
    { headers: key ? { [header]: header === 'authorization' ? `Bearer ${key}` : key } : {} },
  );

describe('client keys', () => {
  const started = [];
  const dirs = [];
  after(async () => {
    await Promise.all(started.map((p) => p.stop()));
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-keys-'));
    dirs.push(dir);
    return dir;
  };

  test('missing, unknown and wrong-model keys are refused in the caller dialect', async () => {
    const mock = await startMock();
    const gateway = await startWithKeys(mock, tempDir());
    started.push(mock, gateway);

    const missing = await chat(gateway, null);
    assert.equal(missing.status, 401);
    assert.equal(missing.json.error.code, 'missing_api_key');
    const unknown = await chat(gateway, 'sk-not-a-key-0000000000');
    assert.equal(unknown.status, 401);
    assert.equal(unknown.json.error.code, 'invalid_api_key');
    assert.equal((await chat(gateway, TEAM_KEY)).status, 200);
    assert.equal((await chat(gateway, TEAM_KEY, 'gpt-4o', 'x-api-key')).status, 200);
    const forbidden = await chat(gateway, TEAM_KEY, 'claude-3');
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.json.error.code, 'model_not_allowed');

    const anthropic = await postJson(
      `${gateway.url}/v1/messages`,
      { model: 'gpt-4o', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'anthropic-version': '2023-06-01' } },
    );
    assert.equal(anthropic.status, 401);
    assert.equal(anthropic.json.type, 'error');
    assert.equal(anthropic.json.error.type, 'authentication_error');
    const models = await fetchWithTimeout(`${gateway.url}/v1/models`);
    assert.equal(models.status, 401);

    // Refused requests never reach the upstream; the key is never forwarded nor logged.
    assert.equal((await mock.stats()).requests, 2);
    const last = await mock.last();
    assert.equal(last.headers.authorization, undefined);
    assert.equal(last.headers['x-api-key'], undefined);
    const lines = gateway.accessLog().filter((l) => l.path === '/v1/chat/completions' && l.status === 200);
    assert.equal(lines.length, 2);
    assert.ok(lines.every((l) => l.key_id === 'team-a'));
    assert.ok(!gateway.stdoutLines.join('\n').includes(TEAM_KEY));
    assert.ok(!gateway.stderr.includes(TEAM_KEY));
  });

  test('admin keys: created, listed without secrets, revoked at once, kept across restarts', async () => {
    const mock = await startMock();
    const stateDir = tempDir();
    let gateway = await startWithKeys(mock, stateDir);
    started.push(mock);

    const created = await admin(gateway, 'POST', '/keys', { id: 'ci', models: ['*'], rpm: 100 });
    assert.equal(created.status, 201, created.text);
    const secret = created.json.key;
    assert.match(secret, /^sk-sluice-[A-Za-z0-9_-]{43}$/);
    assert.equal((await admin(gateway, 'POST', '/keys', { id: 'ci' })).status, 409);
    assert.equal((await admin(gateway, 'POST', '/keys', { rpm: -1 })).status, 400);
    const listed = await admin(gateway, 'GET', '/keys');
    assert.deepEqual(
      listed.json.keys.map((k) => [k.id, k.source, k.revoked]),
      [
        ['team-a', 'config', false],
        ['ci', 'admin', false],
      ],
    );
    assert.ok(!listed.text.includes(secret) && !listed.text.includes(TEAM_KEY));
    assert.equal((await chat(gateway, secret, 'any-model')).status, 200);
    // The state file holds hashes only.
    const saved = fs.readFileSync(path.join(stateDir, 'keys.json'), 'utf8');
    assert.ok(!saved.includes(secret));
    assert.match(saved, /"id":"ci"/);

    // Revocation applies on every thread: many requests over fresh connections.
    assert.equal((await admin(gateway, 'DELETE', '/keys/team-a')).status, 200);
    assert.equal((await admin(gateway, 'DELETE', '/keys/nope')).status, 404);
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 20; i++) {
      const refused = await chat(gateway, TEAM_KEY);
      assert.equal(refused.status, 401);
      assert.match(refused.json.error.message, /revoked/);
    }

    await gateway.stop();
    gateway = await startWithKeys(mock, stateDir);
    started.push(gateway);
    assert.equal((await chat(gateway, secret, 'any-model')).status, 200);
    assert.equal((await chat(gateway, TEAM_KEY)).status, 401);
  });

  test('a corrupt state file is reported and set aside, not fatal', async () => {
    const mock = await startMock();
    const stateDir = tempDir();
    fs.writeFileSync(path.join(stateDir, 'keys.json'), '{"keys": [ {"id": broken');
    const gateway = await startWithKeys(mock, stateDir);
    started.push(mock, gateway);
    assert.equal((await chat(gateway, TEAM_KEY)).status, 200);
    assert.match(gateway.stderr, /keys\.json.*invalid JSON.*skipped/);
    const kept = fs.readdirSync(stateDir).filter((f) => f.startsWith('keys.json.corrupt-'));
    assert.equal(kept.length, 1);
    assert.match(fs.readFileSync(path.join(stateDir, kept[0]), 'utf8'), /broken/);
  });
});
