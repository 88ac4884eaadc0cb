// The admin listener: token checks, worker changes under load, endpoint health summary.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  adminRequest,
  fetchWithTimeout,
  freePort,
  postJson,
  startGateway,
  startMock,
  waitFor,
} from './lib/harness.js';

const TOKEN = 'admin-token-for-tests-0123456789';
const CHAT = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };

const adminCall = (gateway, method, path, body, token = TOKEN) =>
  adminRequest(gateway, token, method, path, body);

async function startWithAdmin(mocks, extra = {}) {
  const adminPort = await freePort();
  const gateway = await startGateway({
    threads: 2,
    admin: { listen: `127.0.0.1:${adminPort}`, token: TOKEN },
    providers: [{ id: 'pool', type: 'openai', endpoints: mocks.map((m) => m.url) }],
    routes: [{ name: 'main', models: ['*'], provider: 'pool', retry: { attempts: 3 } }],
    ...extra,
  });
  gateway.adminUrl = `http://127.0.0.1:${adminPort}`;
  return gateway;
}

describe('admin API', () => {
  const started = [];
  after(async () => {
    await Promise.all(started.map((p) => p.stop()));
  });

  test('requires the admin token; the client port does not serve it', async () => {
    const mock = await startMock();
    const gateway = await startWithAdmin([mock]);
    started.push(mock, gateway);
    for (const token of [null, 'wrong', TOKEN.slice(0, -1), TOKEN + 'x']) {
      const { status, json } = await adminCall(gateway, 'GET', '/workers', undefined, token);
      assert.equal(status, 401, `token ${token}`);
      assert.equal(json.error.type, 'authentication_error');
    }
    const ok = await adminCall(gateway, 'GET', '/workers');
    assert.equal(ok.status, 200);
    assert.equal(ok.json.workers.length, 1);
    assert.equal(ok.json.workers[0].url, mock.url);
    assert.deepEqual(ok.json.workers[0].routes, ['main']);
    const onClientPort = await fetchWithTimeout(`${gateway.url}/workers`);
    assert.equal(onClientPort.status, 404);
    // The token never reaches the logs.
    assert.ok(!gateway.stderr.includes(TOKEN));
    assert.ok(!gateway.stdoutLines.join('\n').includes(TOKEN));
  });

  test('bad worker changes get clear errors', async () => {
    const mock = await startMock();
    const gateway = await startWithAdmin([mock]);
    started.push(mock, gateway);
    const cases = [
      [{ url: mock.url }, 400, /provider/],
      [{ provider: 'nope', url: 'http://127.0.0.1:1' }, 404, /no provider/],
      [{ provider: 'pool', url: 'ftp://x' }, 400, /scheme/],
      [{ provider: 'pool', url: mock.url }, 409, /already/],
      [{ provider: 'pool', url: 'http://127.0.0.1:1', weight: -1 }, 400, /weight/],
      [{ provider: 'pool', url: 'http://127.0.0.1:1', extra: 1 }, 400, /unknown field/],
    ];
    for (const [body, status, message] of cases) {
      const answer = await adminCall(gateway, 'POST', '/workers', body);
      assert.equal(answer.status, status, JSON.stringify(body));
      assert.match(answer.json.error.message, message);
    }
    const missing = await adminCall(gateway, 'DELETE', '/workers/pool-00000000');
    assert.equal(missing.status, 404);
    assert.equal((await adminCall(gateway, 'GET', '/workers')).json.workers.length, 1);
  });

  test('workers added and removed under load: no failed request, traffic follows', async () => {
    const a = await startMock();
    const b = await startMock();
    const c = await startMock();
    const gateway = await startWithAdmin([a]);
    started.push(a, b, c, gateway);

    let running = true;
    let sent = 0;
    const failures = [];
    const client = async () => {
      while (running) {
        const { status, text } = await postJson(`${gateway.url}/v1/chat/completions`, CHAT);
        sent++;
        if (status !== 200) failures.push(`${status} ${text}`);
      }
    };
    const clients = Array.from({ length: 8 }, client);

    const add = async (mock) => {
      const answer = await adminCall(gateway, 'POST', '/workers', {
        provider: 'pool',
        url: mock.url,
        weight: 1,
      });
      assert.equal(answer.status, 201, answer.text);
      return answer.json.id;
    };
    const served = async (mock) => (await mock.stats()).requests;
    await waitFor(async () => sent > 50, { timeoutMs: 10_000, what: 'load' });
    const idB = await add(b);
    const idC = await add(c);
    await waitFor(async () => (await served(b)) > 20 && (await served(c)) > 20, {
      timeoutMs: 10_000,
      what: 'traffic on the added workers',
    });
    // Remove the first worker while requests are in flight on it.
    const idA = (await adminCall(gateway, 'GET', '/workers')).json.workers.find(
      (w) => w.url === a.url,
    ).id;
    const removed = await adminCall(gateway, 'DELETE', `/workers/${idA}`);
    assert.equal(removed.status, 200, removed.text);
    const aAfterRemoval = await served(a);
    await waitFor(async () => sent > 400, { timeoutMs: 20_000, what: 'more load' });
    // At most the requests already picked before the change may still have reached it.
    assert.ok((await served(a)) - aAfterRemoval <= 16, 'traffic still goes to the removed worker');
    assert.equal((await adminCall(gateway, 'DELETE', `/workers/${idB}`)).status, 200);
    const bAfterRemoval = await served(b);
    await waitFor(async () => sent > 600, { timeoutMs: 20_000, what: 'more load' });
    running = false;
    await Promise.all(clients);
    assert.ok((await served(b)) - bAfterRemoval <= 16);
    assert.deepEqual(failures, []);
    const workers = (await adminCall(gateway, 'GET', '/workers')).json.workers;
    assert.deepEqual(
      workers.map((w) => w.id),
      [idC],
    );
    assert.ok(workers[0].attempts > 100);
  });

  test('GET /health on the admin port summarises endpoint states', async () => {
    const a = await startMock();
    const b = await startMock();
    const gateway = await startWithAdmin([a, b], {
      providers: [
        {
          id: 'pool',
          type: 'openai',
          endpoints: [a.url, b.url],
          health_check: {
            path: '/health',
            interval_ms: 50,
            timeout_ms: 200,
            healthy_threshold: 1,
            unhealthy_threshold: 1,
          },
        },
      ],
    });
    started.push(a, b, gateway);
    const health = () => adminCall(gateway, 'GET', '/health');
    await waitFor(async () => (await health()).json.status === 'ok', { what: 'ok' });
    let answer = await health();
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json.routes, [{ name: 'main', workers: 2, available: 2 }]);

    await fetchWithTimeout(`${a.url}/mock/health`, {
      method: 'POST',
      body: JSON.stringify({ status: 503 }),
    });
    await waitFor(async () => (await health()).json.status === 'degraded', { what: 'degraded' });
    answer = await health();
    assert.equal(answer.status, 200);
    assert.equal(answer.json.endpoints.unhealthy, 1);
    // The unhealthy worker gets no traffic.
    const before = (await a.stats()).requests;
    for (let i = 0; i < 20; i++) {
      assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, CHAT)).status, 200);
    }
    assert.equal((await a.stats()).requests, before);

    await b.stop('SIGKILL');
    await waitFor(async () => (await health()).json.status === 'unavailable', {
      what: 'unavailable',
    });
    answer = await health();
    assert.equal(answer.status, 503);
    assert.deepEqual(answer.json.routes, [{ name: 'main', workers: 2, available: 0 }]);
    const start = Date.now();
    const refused = await postJson(`${gateway.url}/v1/chat/completions`, CHAT);
    assert.equal(refused.status, 503);
    assert.equal(refused.json.error.code, 'no_healthy_upstream');
    assert.ok(Date.now() - start < 500);

    await fetchWithTimeout(`${a.url}/mock/health`, {
      method: 'POST',
      body: JSON.stringify({ status: 200 }),
    });
    await waitFor(async () => (await health()).json.status === 'degraded', { what: 'recovery' });
    assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, CHAT)).status, 200);
  });
});
