// Higress ABI (0.2.100) end to end: the token_quota example keeps a daily token counter per key
// in a real redis-server through proxy_redis_call (requests pass until the quota is used, then
// 429; the counter equals the usage), what it does when Redis does not answer (fail open by
// default, 503 when configured closed, never a hang), and test_higress: the start-up calls of
// Higress's Go SDK, the route's endpoints (proxy_get_upstream_hosts) and the override host.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import {
  REPO,
  RawConnection,
  freePort,
  postJson,
  rawPost,
  startGateway,
  startMock,
  waitFor,
} from './lib/harness.js';
import { pluginPath as plugin } from './lib/harness.js';
import { redisCommand, startRedis } from './lib/redis.js';


const TEAM_KEY = 'sk-team-0123456789abcdef';
const CHAT = { model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] };

const chat = (gw, headers = {}) =>
  postJson(`${gw.url}/v1/chat/completions`, CHAT, {
    headers: { authorization: `Bearer ${TEAM_KEY}`, ...headers },
  });

function today() {
  return new Date().toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------------------------
// Redis: tests/integration/lib/redis.js.

// The counter's value as a number (0 when the key does not exist).
async function counter(redis, key) {
  const reply = await redisCommand(redis.port, 'GET', key);
  if (reply.startsWith('$-1')) return 0;
  return Number(reply.split('\r\n')[1]);
}

function quotaGateway(mock, redisUrl, config) {
  return startGateway({
    threads: 2,
    keys: [{ id: 'team-a', key: TEAM_KEY }],
    providers: [{ id: 'mock', type: 'openai', endpoints: [mock.url] }],
    routes: [{ name: 'all', models: ['*'], provider: 'mock' }],
    wasm: { redis: redisUrl },
    plugins: [{ name: 'quota', path: plugin('token_quota'), config }],
  });
}

// ---------------------------------------------------------------------------------------------

describe('token_quota plugin (proxy_redis_call)', { timeout: 90_000 }, () => {
  const cleanup = [];
  after(async () => {
    for (const stop of cleanup.reverse()) await stop();
  });

  test('requests pass until the day’s quota is used, then 429; the counter equals the usage', async () => {
    const redis = await startRedis(await freePort());
    cleanup.push(() => redis.kill());
    const mock = await startMock({ tokens: 5 });
    cleanup.push(() => mock.stop());
    const gw = await quotaGateway(mock, redis.url, { daily_tokens: 60, key_prefix: 'tq:' });
    cleanup.push(() => gw.stop());
    const key = `tq:team-a:${today()}`;

    let used = 0;
    let passed = 0;
    let refused;
    for (let i = 0; i < 20 && !refused; i++) {
      const res = await chat(gw);
      if (res.status === 429) {
        refused = res;
        break;
      }
      assert.equal(res.status, 200, res.text);
      passed++;
      used += res.json.usage.prompt_tokens + res.json.usage.completion_tokens;
      // The usage is charged in proxy_on_log, after the answer: wait until Redis has it.
      await waitFor(async () => (await counter(redis, key)) === used, {
        what: `counter ${key} = ${used}`,
      });
    }
    assert.ok(refused, `no request was refused after ${passed} requests (${used} tokens)`);
    assert.ok(passed >= 2, `only ${passed} requests passed`);
    assert.ok(used >= 60, `refused at ${used} tokens, before the quota of 60`);
    assert.ok(used - (used / passed) < 60, 'the request before the last one was already over');
    assert.equal(refused.json.error.type, 'insufficient_quota');
    assert.equal(refused.json.error.code, 'token_quota_exceeded');
    assert.match(refused.json.error.message, new RegExp(`${used} of 60 tokens`));
    assert.equal((await mock.stats()).requests, passed, 'the refused request reached the mock');
    assert.equal(await counter(redis, key), used, 'a refused request was charged');
    const ttl = Number((await redisCommand(redis.port, 'TTL', key)).slice(1));
    assert.ok(ttl > 86_400 && ttl <= 172_800, `TTL ${ttl}`);

    // Another key has its own quota; a fresh day (the key deleted) starts from zero.
    await redisCommand(redis.port, 'DEL', key);
    const again = await chat(gw);
    assert.equal(again.status, 200, again.text);
  });

  test('Redis down: fail open lets requests through, fail closed answers 503, neither hangs', async () => {
    const mock = await startMock({ tokens: 5 });
    cleanup.push(() => mock.stop());
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    const open = await quotaGateway(mock, nowhere, { daily_tokens: 10 });
    cleanup.push(() => open.stop());
    const closed = await quotaGateway(mock, nowhere, {
      daily_tokens: 10,
      fail_open: false,
      redis_timeout_ms: 300,
    });
    cleanup.push(() => closed.stop());

    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const res = await chat(open);
      assert.equal(res.status, 200, res.text);
      assert.ok(Date.now() - started < 3000, 'the request waited for Redis too long');
    }
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const res = await chat(closed);
      assert.equal(res.status, 503, res.text);
      assert.equal(res.json.error.code, 'token_quota_unavailable');
      assert.ok(Date.now() - started < 3000, 'the request waited for Redis too long');
    }
    assert.match(open.stderr, /token_quota: Redis did not answer/);
  });

  test('no Redis configured: proxy_redis_init/call answer NOT_FOUND and the plugin decides', async () => {
    const mock = await startMock({ tokens: 5 });
    cleanup.push(() => mock.stop());
    const plain = (config) =>
      startGateway({
        threads: 1,
        providers: [{ id: 'mock', type: 'openai', endpoints: [mock.url] }],
        routes: [{ name: 'all', models: ['*'], provider: 'mock' }],
        plugins: [{ name: 'quota', path: plugin('token_quota'), config }],
      });
    const open = await plain({ daily_tokens: 10, key_header: 'x-user' });
    cleanup.push(() => open.stop());
    const closed = await plain({ daily_tokens: 10, key_header: 'x-user', fail_open: false });
    cleanup.push(() => closed.stop());
    assert.match(open.stderr, /no Redis for plugins/);
    const headers = { 'x-user': 'alice' };
    assert.equal((await postJson(`${open.url}/v1/chat/completions`, CHAT, { headers })).status, 200);
    const refused = await postJson(`${closed.url}/v1/chat/completions`, CHAT, { headers });
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.json.error.code, 'token_quota_unavailable');
    // Without the header nobody is counted: the request passes even fail-closed.
    assert.equal((await postJson(`${closed.url}/v1/chat/completions`, CHAT)).status, 200);
  });

  test('Redis stopped while serving: the plugin gets an error, then Redis is used again', async () => {
    const port = await freePort();
    let redis = await startRedis(port);
    const mock = await startMock({ tokens: 5 });
    cleanup.push(() => mock.stop());
    const gw = await quotaGateway(mock, redis.url, { daily_tokens: 1, fail_open: false });
    cleanup.push(() => gw.stop());
    assert.equal((await chat(gw)).status, 200);
    await redis.kill();
    assert.equal((await chat(gw)).status, 503);
    redis = await startRedis(port);
    cleanup.push(() => redis.kill());
    // Quota 1 with an empty counter: the first request passes, then the counter refuses.
    await waitFor(async () => (await chat(gw)).status === 200, {
      timeoutMs: 8000,
      what: 'a request passing once Redis is back',
    });
    await waitFor(async () => (await chat(gw)).status === 429, {
      timeoutMs: 5000,
      what: 'the quota enforced again',
    });
  });
});

describe('Higress upstream hosts and Go SDK start-up (test_higress)', { timeout: 60_000 }, () => {
  const cleanup = [];
  after(async () => {
    for (const stop of cleanup.reverse()) await stop();
  });

  // One request on a connection of its own, so that requests spread over the worker threads.
  async function request(gw, headers) {
    const conn = await RawConnection.open(gw.port);
    try {
      const res = await conn.request(
        rawPost('/v1/chat/completions', CHAT, { ...headers, Connection: 'close' }),
      );
      assert.ok(res, 'no answer');
      return res;
    } finally {
      conn.close();
    }
  }

  test('the plugin sees the route’s endpoints and sends requests to the one it names', async () => {
    const a = await startMock({ tokens: 3 });
    const b = await startMock({ tokens: 3 });
    cleanup.push(() => a.stop(), () => b.stop());
    const gw = await startGateway({
      threads: 2,
      providers: [{ id: 'mock', type: 'openai', endpoints: [a.url, b.url] }],
      routes: [{ name: 'all', models: ['*'], provider: 'mock' }],
      plugins: [{ name: 'hig', path: plugin('test_higress') }],
    });
    cleanup.push(() => gw.stop());
    const addressOf = (mock) => `127.0.0.1:${mock.port}`;

    for (let i = 0; i < 6; i++) {
      const res = await request(gw, { 'x-override-host': addressOf(b) });
      assert.equal(res.status, 200, res.body?.toString());
    }
    assert.equal((await a.stats()).requests, 0, 'a request went to the endpoint not named');
    assert.equal((await b.stats()).requests, 6);
    const seen = (await b.last()).headers;
    assert.equal(seen['x-override-status'], '0');
    assert.equal(seen['x-higress-route'], 'all');
    assert.equal(seen['x-higress-start'], 'hig|-|0');
    assert.deepEqual(seen['x-upstream-hosts'].split(',').sort(),
      [`${addressOf(a)}=H`, `${addressOf(b)}=H`].sort());

    // Naming the other one moves the traffic; a host outside the route is ignored.
    for (let i = 0; i < 4; i++) {
      assert.equal((await request(gw, { 'x-override-host': addressOf(a) })).status, 200);
    }
    assert.equal((await a.stats()).requests, 4);
    await a.reset();
    await b.reset();
    for (let i = 0; i < 6; i++) {
      assert.equal((await request(gw, { 'x-override-host': '127.0.0.1:1' })).status, 200);
    }
    const spread = [(await a.stats()).requests, (await b.stats()).requests];
    assert.equal(spread[0] + spread[1], 6);
    assert.ok(spread[0] > 0 && spread[1] > 0, `balancing did not spread: ${spread}`);
  });

  test('Redis calls made in proxy_on_done (wasm-go’s OnHttpStreamDone) are sent', async () => {
    const redis = await startRedis(await freePort());
    cleanup.push(() => redis.kill());
    const a = await startMock({ tokens: 3 });
    cleanup.push(() => a.stop());
    const gw = await startGateway({
      threads: 2,
      providers: [{ id: 'mock', type: 'openai', endpoints: [a.url] }],
      routes: [{ name: 'all', models: ['*'], provider: 'mock' }],
      wasm: { redis: redis.url },
      plugins: [{ name: 'hig', path: plugin('test_higress') }],
    });
    cleanup.push(() => gw.stop());
    for (let i = 0; i < 5; i++) assert.equal((await request(gw, {})).status, 200);
    await waitFor(async () => (await counter(redis, 'test_higress:done')) === 5, {
      what: 'test_higress:done = 5',
    });
  });

  test('an unhealthy named endpoint is not forced: the balancer picks an available one', async () => {
    const a = await startMock({ tokens: 3 });
    const bPort = await freePort();  // nothing listens there
    cleanup.push(() => a.stop());
    const gw = await startGateway({
      threads: 1,
      providers: [
        { id: 'mock', type: 'openai', endpoints: [a.url, `http://127.0.0.1:${bPort}`] },
      ],
      routes: [{ name: 'all', models: ['*'], provider: 'mock', retry: { attempts: 3 } }],
      plugins: [{ name: 'hig', path: plugin('test_higress') }],
    });
    cleanup.push(() => gw.stop());
    // The first request forced to the dead endpoint fails over by retry; once the endpoint's
    // breaker has it marked down, the override is ignored and requests still succeed.
    for (let i = 0; i < 8; i++) {
      const res = await request(gw, { 'x-override-host': `127.0.0.1:${bPort}` });
      assert.equal(res.status, 200, res.body?.toString());
    }
    assert.equal((await a.stats()).requests, 8);
    // Forced to the dead endpoint, a request needs a retry; once it is marked down, none does.
    const lines = await waitFor(() => {
      const chats = gw.accessLog().filter((e) => e.path === '/v1/chat/completions');
      return chats.length === 8 ? chats : null;
    }, { what: '8 access log lines' });
    const retries = lines.map((e) => e.retries);
    assert.ok(retries[0] > 0, `the first request was not sent to the named endpoint: ${retries}`);
    assert.equal(retries.at(-1), 0, `the override still forced a dead endpoint: ${retries}`);
  });
});
