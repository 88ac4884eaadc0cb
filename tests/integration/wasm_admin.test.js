// The plugin management API (/wasm on the admin listener): deploy by bytes or by path under
// wasm.module_roots, validation before anything changes, one compilation per distinct bytes,
// listing with metrics, replace and delete, hot swap under load (no request fails, none mixes
// two versions), persistence in state_dir across restarts, and a corrupt state file.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  REPO,
  adminRequest,
  fetchWithTimeout,
  freePort,
  postJson,
  startGateway,
  startMock,
} from './lib/harness.js';
import { PLUGIN_DIR } from './lib/harness.js';
import { parsePrometheus } from './lib/prometheus.js';

const TEST_WASM_DIR = process.env.SLUICE_TEST_WASM_DIR || path.join(REPO, 'build', 'tests', 'wasm');
const ADMIN = 'admin-token-for-wasm-0123456789';

const pluginBytes = (name) => fs.readFileSync(path.join(PLUGIN_DIR, `${name}.wasm`));
const base64 = (name) => pluginBytes(name).toString('base64');
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

const admin = (gateway, method, p, body) => adminRequest(gateway, ADMIN, method, p, body);

function expectError(result, status, fragment) {
  assert.equal(result.status, status, result.text);
  assert.equal(typeof result.json?.error?.message, 'string', result.text);
  if (fragment) assert.match(result.json.error.message, fragment);
}

async function startWithAdmin(mock, stateDir, extra = {}) {
  const adminPort = await freePort();
  const gateway = await startGateway({
    threads: 2,
    admin: { listen: `127.0.0.1:${adminPort}`, token: ADMIN },
    state_dir: stateDir,
    wasm: { module_roots: [PLUGIN_DIR] },
    providers: [{ id: 'mock', type: 'openai', endpoints: [mock.url] }],
    routes: [
      { name: 'all', models: ['*'], provider: 'mock' },
      { name: 'special', models: ['special-*'], provider: 'mock' },
    ],
    ...extra,
  });
  gateway.adminUrl = `http://127.0.0.1:${adminPort}`;
  return gateway;
}

const chat = (gateway, body = {}) =>
  postJson(`${gateway.url}/v1/chat/completions`, {
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'hi' }],
    ...body,
  });

// The x-chain header the upstream saw for the last request (test_header_append's work).
async function upstreamChain(gateway, mock, body) {
  const result = await chat(gateway, body);
  assert.equal(result.status, 200, result.text);
  return (await mock.last()).headers['x-chain'];
}

describe('plugin management API', { timeout: 120_000 }, () => {
  let mock;
  let gateway;
  let stateDir;

  before(async () => {
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-wasm-state-'));
    mock = await startMock();
    gateway = await startWithAdmin(mock, stateDir, {
      plugins: [
        {
          name: 'from-config',
          path: path.join(PLUGIN_DIR, 'test_header_append.wasm'),
          config: 'C',
          order: 100,
        },
      ],
    });
  });

  after(async () => {
    await gateway?.stop();
    await mock?.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  test('bad requests change nothing and say why', async () => {
    const before = await admin(gateway, 'GET', '/wasm');
    assert.equal(before.status, 200);
    const noToken = await fetchWithTimeout(`${gateway.adminUrl}/wasm`, { method: 'GET' });
    assert.equal(noToken.status, 401);

    expectError(await admin(gateway, 'POST', '/wasm', '{nope'), 400, /JSON object/);
    expectError(await admin(gateway, 'POST', '/wasm', { modules: [] }), 400, /1 to 64/);
    expectError(await admin(gateway, 'POST', '/wasm', { name: 'x' }), 400, /file_path or wasm_base64/);
    expectError(
      await admin(gateway, 'POST', '/wasm', { name: 'x', wasm_base64: '%%%' }),
      400,
      /not valid base64/,
    );
    expectError(
      await admin(gateway, 'POST', '/wasm', {
        name: 'x',
        wasm_base64: Buffer.from('hello, not wasm').toString('base64'),
      }),
      400,
      /not a WebAssembly module/,
    );
    expectError(
      await admin(gateway, 'POST', '/wasm', {
        name: 'x',
        wasm_base64: fs.readFileSync(path.join(TEST_WASM_DIR, 'no_abi.wasm')).toString('base64'),
      }),
      400,
      /proxy_abi_version/,
    );
    const testModule = (name) => fs.readFileSync(path.join(TEST_WASM_DIR, `${name}.wasm`)).toString('base64');
    expectError(
      await admin(gateway, 'POST', '/wasm', { name: 'x', wasm_base64: testModule('unknown_import') }),
      400,
      /proxy_teleport/,
    );
    expectError(
      await admin(gateway, 'POST', '/wasm', { name: 'x', wasm_base64: testModule('memory_hog') }),
      400,
      /memory/,
    );
    // proxy_on_configure refuses an empty tag: the canary start catches it.
    expectError(
      await admin(gateway, 'POST', '/wasm', { name: 'x', wasm_base64: base64('test_version'), config: '' }),
      400,
      /canary.*configuration rejected/,
    );
    expectError(
      await admin(gateway, 'POST', '/wasm', {
        name: 'x',
        wasm_base64: base64('test_version'),
        config: 'v1',
        attach: ['no-such-route'],
      }),
      400,
      /no route "no-such-route"/,
    );
    expectError(
      await admin(gateway, 'POST', '/wasm', {
        name: 'x',
        wasm_base64: base64('test_version'),
        config: 'v1',
        color: 'blue',
      }),
      400,
      /color: unknown key/,
    );
    expectError(
      await admin(gateway, 'POST', '/wasm', {
        name: 'x',
        wasm_base64: base64('test_version'),
        config: 'v1',
        limits: { deadline_ms: 0 },
      }),
      400,
      /deadline_ms/,
    );
    // A path outside the roots and a missing file get the same answer.
    const outside = await admin(gateway, 'POST', '/wasm', { name: 'x', file_path: '/etc/passwd' });
    const missing = await admin(gateway, 'POST', '/wasm', {
      name: 'x',
      file_path: path.join(PLUGIN_DIR, 'missing.wasm'),
    });
    const escaping = await admin(gateway, 'POST', '/wasm', {
      name: 'x',
      file_path: path.join(PLUGIN_DIR, '..', 'plugins', '..', 'sluice'),
    });
    expectError(outside, 400, /no module file/);
    expectError(missing, 400, /no module file/);
    expectError(escaping, 400, /no module file/);
    assert.equal(outside.json.error.message.replace('/etc/passwd', 'P'),
                 missing.json.error.message.replace(path.join(PLUGIN_DIR, 'missing.wasm'), 'P'));
    // One bad module of two: neither is deployed.
    expectError(
      await admin(gateway, 'POST', '/wasm', {
        modules: [
          { name: 'good', wasm_base64: base64('test_version'), config: 'v1' },
          { name: 'bad', wasm_base64: 'AAAA' },
        ],
      }),
      400,
      /modules\[1\]/,
    );
    expectError(
      await admin(gateway, 'POST', '/wasm', { name: 'from-config', wasm_base64: base64('test_version'), config: 'v' }),
      409,
      /exists/,
    );
    expectError(await admin(gateway, 'GET', '/wasm/no-such-uuid'), 404);
    expectError(await admin(gateway, 'PUT', '/wasm/no-such-uuid', { config: 'v2' }), 404);
    expectError(await admin(gateway, 'DELETE', '/wasm/no-such-uuid'), 404);
    const configModule = before.json.modules.find((m) => m.name === 'from-config');
    assert.equal(configModule.source, 'config');
    expectError(await admin(gateway, 'DELETE', `/wasm/${configModule.uuid}`), 409, /config file/);
    expectError(await admin(gateway, 'PUT', `/wasm/${configModule.uuid}`, { config: 'D' }), 409);

    const afterwards = await admin(gateway, 'GET', '/wasm');
    assert.deepEqual(
      afterwards.json.modules.map((m) => m.uuid),
      before.json.modules.map((m) => m.uuid),
    );
    assert.equal(await upstreamChain(gateway, mock), 'C');
  });

  test('deploy, list with metrics, replace, delete', async () => {
    const deployed = await admin(gateway, 'POST', '/wasm', {
      modules: [
        { name: 'append-a', wasm_base64: base64('test_header_append'), config: 'A', order: 1 },
        {
          name: 'append-b',
          file_path: path.join(PLUGIN_DIR, 'test_header_append.wasm'),
          config: { suffix: 'B' },
          order: 2,
          attach: ['special'],
          failure_policy: 'fail_open',
          limits: { deadline_ms: 50, max_memory_mb: 16 },
        },
      ],
    });
    assert.equal(deployed.status, 201, deployed.text);
    const [a, b] = deployed.json.modules;
    assert.match(a.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(a.uuid, b.uuid);
    assert.equal(a.sha256, sha256(pluginBytes('test_header_append')));
    assert.equal(b.sha256, a.sha256);

    // The next requests run the new chain: global A, then (route special only) B, then C.
    assert.equal(await upstreamChain(gateway, mock), 'AC');
    assert.equal(await upstreamChain(gateway, mock, { model: 'special-1' }), 'ABC');

    // The same bytes under another name (and the same memory cap) are not compiled again.
    const before = (await admin(gateway, 'GET', '/wasm')).json.compilations;
    const again = await admin(gateway, 'POST', '/wasm', {
      name: 'append-z',
      wasm_base64: base64('test_header_append'),
      config: 'Z',
      order: 3,
      attach: ['special'],
    });
    assert.equal(again.status, 201, again.text);
    assert.equal((await admin(gateway, 'GET', '/wasm')).json.compilations, before);
    assert.equal(await upstreamChain(gateway, mock, { model: 'special-1' }), 'ABZC');

    const listed = await admin(gateway, 'GET', '/wasm');
    const one = listed.json.modules.find((m) => m.uuid === b.uuid);
    assert.equal(one.name, 'append-b');
    assert.equal(one.version, 1);
    assert.equal(one.source, 'api');
    assert.equal(one.state, 'active');
    assert.deepEqual(one.attach, ['special']);
    assert.equal(one.order, 2);
    assert.equal(one.failure_policy, 'fail_open');
    assert.equal(one.limits.deadline_ms, 50);
    assert.equal(one.limits.max_memory_mb, 16);
    assert.equal(one.config, undefined, 'configurations may hold secrets: only their size shows');
    assert.equal(one.config_bytes, '{"suffix":"B"}'.length);
    assert.ok(one.metrics.calls >= 2, JSON.stringify(one.metrics));
    assert.ok(one.metrics.modifications >= 2, JSON.stringify(one.metrics));
    assert.equal(one.metrics.traps, 0);
    assert.ok(one.metrics.max_us > 0 && one.metrics.p99_us > 0 && one.metrics.avg_us > 0);
    assert.ok(one.metrics.p99_us <= one.metrics.max_us);
    assert.deepEqual((await admin(gateway, 'GET', `/wasm/${b.uuid}`)).json.uuid, b.uuid);

    // Per-module series on /metrics.
    const res = await fetchWithTimeout(`${gateway.adminUrl}/metrics`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const series = parsePrometheus(await res.text());
    const calls = series.find(
      (s) => s.name === 'sluice_wasm_calls_total' && s.labels.plugin === 'append-b',
    );
    assert.ok(calls, 'sluice_wasm_calls_total for append-b');
    assert.equal(calls.labels.uuid, b.uuid);
    assert.equal(calls.value, one.metrics.calls);
    assert.ok(
      series.some(
        (s) => s.name === 'sluice_wasm_callback_seconds_count' && s.labels.plugin === 'append-b' && s.value > 0,
      ),
    );

    // PUT: new settings, same uuid, next version, counters kept.
    const replaced = await admin(gateway, 'PUT', `/wasm/${b.uuid}`, { config: 'Q', attach: 'global' });
    assert.equal(replaced.status, 200, replaced.text);
    assert.equal(replaced.json.uuid, b.uuid);
    assert.equal(replaced.json.version, 2);
    assert.equal(replaced.json.attach, 'global');
    assert.ok(replaced.json.metrics.calls >= one.metrics.calls);
    assert.equal(await upstreamChain(gateway, mock), 'AQC');
    // PUT with new bytes: the digest follows.
    const rebytes = await admin(gateway, 'PUT', `/wasm/${b.uuid}`, {
      wasm_base64: base64('test_version'),
      config: 'v9',
    });
    assert.equal(rebytes.status, 200, rebytes.text);
    assert.equal(rebytes.json.version, 3);
    assert.equal(rebytes.json.sha256, sha256(pluginBytes('test_version')));
    const tagged = await chat(gateway);
    assert.equal(tagged.headers.get('x-plugin-version'), 'v9/v9');
    // A PUT that fails validation leaves the module as it was.
    expectError(await admin(gateway, 'PUT', `/wasm/${b.uuid}`, { config: '' }), 400, /rejected/);
    assert.equal((await admin(gateway, 'GET', `/wasm/${b.uuid}`)).json.version, 3);

    for (const uuid of [a.uuid, b.uuid, again.json.modules[0].uuid]) {
      const removed = await admin(gateway, 'DELETE', `/wasm/${uuid}`);
      assert.equal(removed.status, 200, removed.text);
    }
    assert.equal(await upstreamChain(gateway, mock), 'C');
    assert.equal((await chat(gateway)).headers.get('x-plugin-version'), null);
    assert.deepEqual(
      (await admin(gateway, 'GET', '/wasm')).json.modules.map((m) => m.name),
      ['from-config'],
    );
  });
});

describe('hot swap under load', { timeout: 120_000 }, () => {
  let mock;
  let gateway;
  let stateDir;

  before(async () => {
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-wasm-state-'));
    mock = await startMock({ tokens: 20, tokenDelayMs: 2 });
    gateway = await startWithAdmin(mock, stateDir);
  });

  after(async () => {
    await gateway?.stop();
    await mock?.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  test('requests never fail and never mix two versions while modules change', async () => {
    let stop = false;
    const seen = new Map();
    const failures = [];
    const client = async (stream) => {
      while (!stop) {
        try {
          const res = await fetchWithTimeout(`${gateway.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'gpt-4o', stream, messages: [{ role: 'user', content: 'hi' }] }),
          });
          const text = await res.text();
          if (res.status !== 200) {
            failures.push(`${res.status} ${text}`);
            continue;
          }
          if (stream && !text.includes('data: [DONE]')) failures.push(`stream cut: ${text.slice(-200)}`);
          const version = res.headers.get('x-plugin-version') ?? 'absent';
          seen.set(version, (seen.get(version) ?? 0) + 1);
        } catch (error) {
          failures.push(String(error));
        }
      }
    };
    const clients = [client(false), client(true), client(false), client(true)];

    const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    let uuid;
    for (let round = 1; round <= 4; round++) {
      const deployed = await admin(gateway, 'POST', '/wasm', {
        name: 'versioned',
        wasm_base64: base64('test_version'),
        config: `r${round}v1`,
      });
      assert.equal(deployed.status, 201, deployed.text);
      uuid = deployed.json.modules[0].uuid;
      await pause(150);
      for (let v = 2; v <= 4; v++) {
        const put = await admin(gateway, 'PUT', `/wasm/${uuid}`, { config: `r${round}v${v}` });
        assert.equal(put.status, 200, put.text);
        await pause(100);
      }
      assert.equal((await admin(gateway, 'DELETE', `/wasm/${uuid}`)).status, 200);
      await pause(100);
    }
    stop = true;
    await Promise.all(clients);

    assert.deepEqual(failures, []);
    let total = 0;
    for (const [version, count] of seen) {
      total += count;
      if (version === 'absent') continue;
      const [request, response] = version.split('/');
      assert.equal(request, response, `a request saw two versions: ${version}`);
      assert.match(request, /^r[1-4]v[1-4]$/);
    }
    // The swaps happened while requests ran: many versions were seen.
    const versions = [...seen.keys()].filter((v) => v !== 'absent');
    assert.ok(versions.length >= 8, `versions seen: ${JSON.stringify([...seen])}`);
    assert.ok(total > 100, `only ${total} requests`);
  });
});

describe('state_dir', { timeout: 120_000 }, () => {
  let mock;
  let stateDir;

  before(async () => {
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-wasm-state-'));
    mock = await startMock();
  });

  after(async () => {
    await mock?.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  test('deployed modules come back after a restart; broken state is reported, not fatal', async () => {
    let gateway = await startWithAdmin(mock, stateDir);
    const deployed = await admin(gateway, 'POST', '/wasm', {
      modules: [
        { name: 'kept', wasm_base64: base64('test_version'), config: 'k1' },
        { name: 'lost-bytes', wasm_base64: base64('test_header_append'), config: 'L', attach: ['special'] },
      ],
    });
    assert.equal(deployed.status, 201, deployed.text);
    const [kept, lost] = deployed.json.modules;
    assert.equal((await admin(gateway, 'PUT', `/wasm/${kept.uuid}`, { config: 'k2' })).status, 200);
    await gateway.stop();

    const files = fs.readdirSync(path.join(stateDir, 'wasm')).sort();
    assert.deepEqual(files, [`${kept.sha256}.wasm`, `${lost.sha256}.wasm`, 'modules.json'].sort());
    const mode = fs.statSync(path.join(stateDir, 'wasm', 'modules.json')).mode & 0o777;
    assert.equal(mode, 0o600);

    gateway = await startWithAdmin(mock, stateDir);
    const listed = (await admin(gateway, 'GET', '/wasm')).json.modules;
    const back = listed.find((m) => m.uuid === kept.uuid);
    assert.equal(back.name, 'kept');
    assert.equal(back.version, 2);
    assert.equal(back.state, 'active');
    assert.equal((await chat(gateway)).headers.get('x-plugin-version'), 'k2/k2');
    await gateway.stop();

    // Missing bytes: the module stays listed as failed, the rest runs.
    fs.rmSync(path.join(stateDir, 'wasm', `${lost.sha256}.wasm`));
    gateway = await startWithAdmin(mock, stateDir);
    const failed = (await admin(gateway, 'GET', '/wasm')).json.modules.find((m) => m.uuid === lost.uuid);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error, /missing or damaged/);
    assert.match(gateway.stderr, /lost-bytes.*not loaded/);
    assert.equal((await chat(gateway)).headers.get('x-plugin-version'), 'k2/k2');
    // It can be removed.
    assert.equal((await admin(gateway, 'DELETE', `/wasm/${lost.uuid}`)).status, 200);
    await gateway.stop();

    // A corrupt state file: reported, set aside, the gateway starts without those modules.
    const stateFile = path.join(stateDir, 'wasm', 'modules.json');
    fs.writeFileSync(stateFile, '{"modules": [ {"uuid": 12');
    gateway = await startWithAdmin(mock, stateDir);
    assert.match(gateway.stderr, /modules\.json: not JSON.*kept as .*corrupt-/);
    assert.deepEqual((await admin(gateway, 'GET', '/wasm')).json.modules, []);
    assert.equal((await chat(gateway)).status, 200);
    const aside = fs.readdirSync(path.join(stateDir, 'wasm')).filter((f) => f.includes('.corrupt-'));
    assert.equal(aside.length, 1);
    assert.equal(fs.readFileSync(path.join(stateDir, 'wasm', aside[0]), 'utf8'), '{"modules": [ {"uuid": 12');
    await gateway.stop();
  });
});
