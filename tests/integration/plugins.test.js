// WebAssembly plugins in the request path: the example plugins (auth, logging, ratelimit), the
// order and attach points of a chain, HTTP call-outs, response-body rewriting on a stream, and
// the official `openai` client through a plugin. Failing and hostile plugins are in
// plugin_failures.test.js.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import {
  REPO,
  RawConnection,
  chunkContent,
  fetchWithTimeout,
  isOpenAiError,
  mockText,
  postJson,
  rawPost,
  readSse,
  simpleConfig,
  startGateway,
  startMock,
  waitFor,
} from './lib/harness.js';
import { pluginPath as plugin } from './lib/harness.js';


const CHAT = { messages: [{ role: 'user', content: 'hi' }] };
const TOKENS = 5;

function chat(gw, model, { headers = {}, ...body } = {}) {
  return postJson(`${gw.url}/v1/chat/completions`, { model, ...CHAT, ...body }, { headers });
}

// One request on a connection of its own (closed afterwards), so that successive requests are
// spread over the gateway's worker threads by SO_REUSEPORT instead of sharing one keep-alive
// connection, hence one thread.
async function chatOnNewConnection(gw, model, headers = {}) {
  const conn = await RawConnection.open(gw.port);
  try {
    const res = await conn.request(
      rawPost('/v1/chat/completions', { model, ...CHAT }, { ...headers, Connection: 'close' }),
    );
    assert.ok(res, 'the gateway closed the connection without an answer');
    return res;
  } finally {
    conn.close();
  }
}

function assertStatus(result, status) {
  assert.equal(result.status, status, `expected ${status}, got ${result.status}: ${result.text}`);
}

// ---------------------------------------------------------------------------------------------

describe('auth plugin', { timeout: 60_000 }, () => {
  let mock;
  let gw; // the plugin is granted the credential headers
  let hidden; // the same plugin without expose_credentials

  before(async () => {
    mock = await startMock({ tokens: TOKENS });
    const auth = (extra) => ({
      name: 'auth',
      path: plugin('auth'),
      config: { keys: ['k1'] },
      failure_policy: 'fail_closed',
      ...extra,
    });
    [gw, hidden] = await Promise.all([
      startGateway({ ...simpleConfig([mock]), plugins: [auth({ expose_credentials: true })] }),
      startGateway({ ...simpleConfig([mock]), plugins: [auth({})] }),
    ]);
  });

  after(async () => {
    await Promise.all([gw?.stop(), hidden?.stop()]);
  });

  const INVALID_KEY = {
    error: { message: 'invalid API key', type: 'invalid_request_error', code: 'invalid_api_key' },
  };

  test("no key: the plugin's 401, and the request goes no further", async () => {
    const before = (await mock.stats()).requests;
    const result = await chat(gw, 'gpt-4o');
    assertStatus(result, 401);
    assert.deepEqual(result.json, INVALID_KEY);
    assert.equal(result.headers.get('www-authenticate'), 'Bearer');
    assert.match(result.headers.get('content-type'), /application\/json/);
    assert.ok(result.headers.get('x-request-id'), 'a local response still carries x-request-id');
    assert.equal((await mock.stats()).requests, before, 'the refused request reached the upstream');
    const id = result.headers.get('x-request-id');
    const line = await gw.waitForLog((l) => l.request_id === id);
    assert.equal(line.plugin_actions, 'local_response');
  });

  test('a wrong key is 401, as Bearer and as x-api-key', async () => {
    for (const headers of [{ authorization: 'Bearer k2' }, { 'x-api-key': 'k11' }]) {
      const result = await chat(gw, 'gpt-4o', { headers });
      assertStatus(result, 401);
      assert.deepEqual(result.json, INVALID_KEY);
    }
  });

  test('the right key passes as authorization: Bearer and as x-api-key', async () => {
    const bearer = await chat(gw, 'gpt-4o', { headers: { authorization: 'Bearer k1' } });
    assertStatus(bearer, 200);
    assert.equal(bearer.json.choices[0].message.content, mockText(TOKENS));
    const last = await mock.last();
    assert.equal(last.headers.authorization, undefined, 'the client key was forwarded upstream');

    const apiKey = await chat(gw, 'gpt-4o', { headers: { 'x-api-key': 'k1' } });
    assertStatus(apiKey, 200);
    assert.equal((await mock.last()).headers['x-api-key'], undefined);
  });

  test('without expose_credentials the plugin cannot see the key: 401 with it', async () => {
    for (const headers of [{ authorization: 'Bearer k1' }, { 'x-api-key': 'k1' }]) {
      const result = await chat(hidden, 'gpt-4o', { headers });
      assertStatus(result, 401);
      assert.deepEqual(result.json, INVALID_KEY);
    }
    // The plugin says why: it saw a request without any credential header.
    await waitFor(() => hidden.stderr.includes('plugin auth: auth: request without credentials'), {
      what: "the auth plugin's warning about requests without credentials",
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('logging plugin', { timeout: 60_000 }, () => {
  let mock;
  let gw;

  before(async () => {
    mock = await startMock({ tokens: TOKENS });
    gw = await startGateway({
      ...simpleConfig([mock]),
      log_level: 'info',
      plugins: [{ name: 'logging', path: plugin('logging'), failure_policy: 'fail_open' }],
    });
  });

  after(async () => {
    await gw?.stop();
  });

  test('an upstream 500 reaches the client as 503', async () => {
    const result = await chat(gw, 'gpt-4o', { headers: { 'x-mock-status': '500' } });
    assertStatus(result, 503);
    assert.ok(isOpenAiError(result.json), result.text); // the upstream's error body, relayed
    const id = result.headers.get('x-request-id');
    await waitFor(() => gw.stderr.includes(`request ${id}: upstream answered 500, sent 503`), {
      what: "the logging plugin's warning about the 500",
    });
  });

  test("the plugin logs method and path with the gateway's request id", async () => {
    const result = await chat(gw, 'gpt-4o');
    assertStatus(result, 200);
    // The client sent no x-request-id: the plugin saw the id the gateway made (and returned).
    const id = result.headers.get('x-request-id');
    assert.ok(id);
    await waitFor(
      () =>
        gw.stderr.includes(`plugin logging: request ${id} POST /v1/chat/completions`) &&
        new RegExp(`plugin logging: done ${id} status=200 duration_ms=\\d+\\.\\d{3}`).test(
          gw.stderr,
        ),
      { what: `the logging plugin's lines for request ${id}` },
    );
  });

  test('a client request id is what the plugin logs and what the upstream sees', async () => {
    const id = randomUUID(); // 36 bytes: the plugin logs ids of up to 36 bytes whole
    const result = await chat(gw, 'gpt-4o', { headers: { 'x-request-id': id } });
    assertStatus(result, 200);
    assert.equal(result.headers.get('x-request-id'), id);
    assert.equal((await mock.last()).headers['x-request-id'], id);
    await waitFor(() => gw.stderr.includes(`request ${id} POST /v1/chat/completions`), {
      what: `the logging plugin's line for request ${id}`,
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('ratelimit plugin', { timeout: 60_000 }, () => {
  const LIMIT = 3;
  let mock;
  let gw;

  before(async () => {
    mock = await startMock({ tokens: 1 });
    gw = await startGateway({
      ...simpleConfig([mock]),
      threads: 2,
      plugins: [
        {
          name: 'ratelimit',
          path: plugin('ratelimit'),
          config: { requests_per_minute: LIMIT, header: 'x-client' },
          failure_policy: 'fail_closed',
        },
      ],
    });
  });

  after(async () => {
    await gw?.stop();
  });

  // The plugin counts in fixed one-minute windows of the wall clock: a run that crosses a
  // window boundary is repeated once with fresh client keys.
  async function inOneWindow(run) {
    for (let attempt = 0; ; attempt++) {
      const window = Math.floor(Date.now() / 60_000);
      const result = await run();
      if (Math.floor(Date.now() / 60_000) === window || attempt === 1) return result;
    }
  }

  test('the 4th request of a client in a minute is 429 with retry-after; others pass', async () => {
    const { statuses, refused, other, upstreamRequests } = await inOneWindow(async () => {
      const client = `client-${randomUUID()}`;
      const before = (await mock.stats()).requests;
      const statuses = [];
      let refused;
      for (let i = 0; i <= LIMIT; i++) {
        const result = await chat(gw, 'gpt-4o', { headers: { 'x-client': client } });
        statuses.push(result.status);
        if (result.status === 429) refused = result;
      }
      const other = await chat(gw, 'gpt-4o', { headers: { 'x-client': `other-${randomUUID()}` } });
      const upstreamRequests = (await mock.stats()).requests - before;
      return { statuses, refused, other, upstreamRequests };
    });
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.ok(isOpenAiError(refused.json), refused.text);
    assert.equal(refused.json.error.code, 'rate_limit_exceeded');
    assert.equal(refused.json.error.type, 'rate_limit_error');
    const retryAfter = refused.headers.get('retry-after');
    assert.match(retryAfter ?? '', /^\d+$/, `retry-after: ${retryAfter}`);
    assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 60, `retry-after: ${retryAfter}`);
    assert.equal(refused.headers.get('x-ratelimit-limit-requests'), String(LIMIT));
    assert.equal(refused.headers.get('x-ratelimit-remaining-requests'), '0');
    assertStatus(other, 200);
    assert.equal(upstreamRequests, LIMIT + 1, 'the refused request must not reach the upstream');
  });

  test('a metric the plugin defines is exported on /metrics', async () => {
    const read = async () => {
      const response = await fetch(`${gw.url}/metrics`);
      assert.equal(response.status, 200);
      const text = await response.text();
      const match = text.match(/^sluice_plugin_ratelimit_rejected_total (\d+)$/m);
      assert.ok(match, `no ratelimit_rejected_total in /metrics:\n${text}`);
      return Number(match[1]);
    };
    const client = `client-${randomUUID()}`;
    const before = await read();
    let refused = 0;
    for (let i = 0; i <= LIMIT + 1; i++) {
      const result = await chat(gw, 'gpt-4o', { headers: { 'x-client': client } });
      if (result.status === 429) refused++;
    }
    assert.ok(refused >= 1);
    assert.equal(await read(), before + refused);
  });

  test('the limit is global across worker threads (one connection per request)', async () => {
    // 12 connections: SO_REUSEPORT spreads them over both threads (all on one thread has a
    // chance of 1 in 2048). Per-thread counters would let up to 2 * LIMIT requests through.
    const N = 12;
    const statuses = await inOneWindow(async () => {
      const client = `client-${randomUUID()}`;
      const statuses = [];
      for (let i = 0; i < N; i++) {
        statuses.push((await chatOnNewConnection(gw, 'gpt-4o', { 'x-client': client })).status);
      }
      return statuses;
    });
    assert.deepEqual(statuses, [...Array(LIMIT).fill(200), ...Array(N - LIMIT).fill(429)]);
  });

  test('concurrent requests of one client are counted exactly', async () => {
    const statuses = await inOneWindow(async () => {
      const client = `client-${randomUUID()}`;
      // The first request creates the counter (the ABI has no create-if-absent: a race on the
      // very first write may lose a count, as the plugin's README says); then 8 at once.
      const first = await chatOnNewConnection(gw, 'gpt-4o', { 'x-client': client });
      const rest = await Promise.all(
        Array.from({ length: 8 }, () => chatOnNewConnection(gw, 'gpt-4o', { 'x-client': client })),
      );
      return [first.status, ...rest.map((r) => r.status)];
    });
    assert.equal(statuses.filter((s) => s === 200).length, LIMIT, `statuses: ${statuses}`);
    assert.equal(statuses.filter((s) => s === 429).length, statuses.length - LIMIT);
  });
});

// ---------------------------------------------------------------------------------------------

describe('plugin chain', { timeout: 60_000 }, () => {
  let mock;
  let bFirst; // a: order 20, b: order 10
  let aFirst; // a: order 10, b: order 20
  let attached; // g global, x attached to route r1 only

  const append = (name, suffix, extra = {}) => ({
    name,
    path: plugin('test_header_append'),
    config: suffix,
    ...extra,
  });

  before(async () => {
    mock = await startMock({ tokens: 1 });
    [bFirst, aFirst, attached] = await Promise.all([
      startGateway({
        ...simpleConfig([mock]),
        plugins: [append('a', 'A', { order: 20 }), append('b', 'B', { order: 10 })],
      }),
      startGateway({
        ...simpleConfig([mock]),
        plugins: [append('a', 'A', { order: 10 }), append('b', 'B', { order: 20 })],
      }),
      startGateway({
        ...simpleConfig([mock]),
        routes: [
          { name: 'r1', models: ['m1-*'], provider: 'mock' },
          { name: 'r2', models: ['m2-*'], provider: 'mock' },
        ],
        plugins: [append('g', 'G'), append('x', 'X', { attach: ['r1'] })],
      }),
    ]);
  });

  after(async () => {
    await Promise.all([bFirst?.stop(), aFirst?.stop(), attached?.stop()]);
  });

  async function upstreamChain(gw, model, headers = {}) {
    const result = await chat(gw, model, { headers });
    assertStatus(result, 200);
    const last = await mock.last();
    assert.equal(last.headers['x-request-id'], result.headers.get('x-request-id'));
    return last.headers['x-chain'];
  }

  test('plugins run by `order`, lower first, whatever their place in the list', async () => {
    assert.equal(await upstreamChain(bFirst, 'gpt-4o'), 'BA');
    assert.equal(await upstreamChain(aFirst, 'gpt-4o'), 'AB');
  });

  test('each plugin sees the request as the previous one left it', async () => {
    assert.equal(await upstreamChain(bFirst, 'gpt-4o', { 'x-chain': 'C' }), 'CBA');
  });

  test('a plugin attached to route r1 does not run for a model routed to r2', async () => {
    // Without `order`, list position decides: g, then x.
    assert.equal(await upstreamChain(attached, 'm1-model'), 'GX');
    assert.equal(await upstreamChain(attached, 'm2-model'), 'G');
  });
});

// ---------------------------------------------------------------------------------------------

describe('test_http_call and test_body_rewrite plugins', { timeout: 60_000 }, () => {
  let main; // the routes' upstream
  let side; // the upstream the plugin calls
  let gw;

  before(async () => {
    [main, side] = await Promise.all([startMock({ tokens: TOKENS }), startMock({ tokens: 1 })]);
    gw = await startGateway({
      threads: 2,
      providers: [
        { id: 'main', type: 'openai', endpoints: [main.url] },
        { id: 'side', type: 'openai', endpoints: [side.url] },
      ],
      routes: [
        { name: 'call', models: ['call-*'], provider: 'main' },
        { name: 'callbad', models: ['callbad-*'], provider: 'main' },
        { name: 'rewrite', models: ['rw-*'], provider: 'main' },
        { name: 'plain', models: ['*'], provider: 'main' },
      ],
      plugins: [
        { name: 'call', path: plugin('test_http_call'), config: 'side', attach: ['call'] },
        { name: 'callbad', path: plugin('test_http_call'), config: 'nowhere', attach: ['callbad'] },
        { name: 'rewrite', path: plugin('test_body_rewrite'), attach: ['rewrite'] },
      ],
    });
  });

  after(async () => {
    await gw?.stop();
  });

  test('the request waits for the call-out; the upstream sees what the plugin learnt', async () => {
    const models = await fetchWithTimeout(`${side.url}/v1/models`);
    const modelsBytes = Buffer.byteLength(await models.text());
    await side.reset();

    const result = await chat(gw, 'call-model');
    assertStatus(result, 200);
    assert.equal(result.json.choices[0].message.content, mockText(TOKENS));

    const call = await side.last();
    assert.equal(call.method, 'GET');
    assert.equal(call.target, '/v1/models');
    assert.equal(call.headers.host, 'x', "the plugin's :authority becomes the Host header");

    const forwarded = await main.last();
    assert.equal(forwarded.headers['x-call-status'], '200');
    assert.ok(Number(forwarded.headers['x-call-body-bytes']) > 0, JSON.stringify(forwarded));
    assert.equal(Number(forwarded.headers['x-call-body-bytes']), modelsBytes);
  });

  test('several paused requests at once each get their own answer', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => chat(gw, 'call-model')));
    for (const result of results) assertStatus(result, 200);
  });

  test('a call to an unknown upstream gets no headers: the plugin answers 502', async () => {
    const before = (await main.stats()).requests;
    const result = await chat(gw, 'callbad-model');
    assertStatus(result, 502);
    assert.ok(isOpenAiError(result.json), result.text);
    assert.equal(result.json.error.code, 'http_call_failed');
    assert.equal((await main.stats()).requests, before, 'the request went upstream anyway');
    // The gateway keeps serving afterwards.
    assertStatus(await chat(gw, 'call-model'), 200);
  });

  test('a rewritten plain answer over 64 KiB is not held: it reaches the client chunked', async () => {
    const conn = await RawConnection.open(gw.port);
    try {
      const res = await conn.request(
        rawPost('/v1/chat/completions', { model: 'rw-model', ...CHAT }, { 'x-mock-tokens': '20000' }),
      );
      assert.equal(res.status, 200);
      assert.equal(res.headers['transfer-encoding'], 'chunked');
      assert.equal(res.headers['content-length'], undefined);
      // The plugin rewrites each piece it sees, so a "tok" split between two reads stays as is.
      const content = res.json.choices[0].message.content;
      assert.equal(content.toLowerCase(), mockText(20000));
      assert.ok((content.match(/TOK/g) ?? []).length > 19000);
    } finally {
      conn.close();
    }
  });

  test('a stream is rewritten event by event, without being buffered', async () => {
    const start = Date.now();
    const res = await fetchWithTimeout(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-mock-tokens': '10',
        'x-mock-token-delay-ms': '20',
      },
      body: JSON.stringify({ model: 'rw-model', stream: true, ...CHAT }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const events = [];
    for await (const event of readSse(res, start)) events.push(event);
    assert.equal(events.at(-1).data, '[DONE]');

    const chunks = events.filter((e) => e.data !== '[DONE]');
    const content = chunks.map((e) => chunkContent(e.data)).join('');
    assert.equal(content, mockText(10).replaceAll('tok', 'TOK'));
    for (const event of events) assert.ok(!event.data.includes('tok'), event.data);

    const first = events.find((e) => e.data.includes('TOK0 '));
    const last = events.find((e) => e.data.includes('TOK9 '));
    assert.ok(first && last, 'TOK0 and TOK9 events');
    // 9 pauses of 20 ms separate them at the mock; a buffered body would arrive all at once.
    assert.ok(last.at - first.at >= 90, `first at ${first.at} ms, last at ${last.at} ms`);
  });

  test('a plain response is rewritten too, and goes out whole with its new length', async () => {
    const conn = await RawConnection.open(gw.port);
    try {
      const res = await conn.request(
        rawPost('/v1/chat/completions', { model: 'rw-model', ...CHAT }),
      );
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers['transfer-encoding'], undefined);
      assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.text));
      assert.equal(res.json.choices[0].message.content, mockText(TOKENS).replaceAll('tok', 'TOK'));
      assert.ok(!res.text.includes('tok'), res.text);
      // The connection stays usable: the next answer on it is framed as well.
      const again = await conn.request(
        rawPost('/v1/chat/completions', { model: 'rw-model', ...CHAT }),
      );
      assert.equal(again.status, 200);
      assert.equal(Number(again.headers['content-length']), Buffer.byteLength(again.text));
      assert.equal(again.json.choices[0].message.content, res.json.choices[0].message.content);
    } finally {
      conn.close();
    }
    // The plugin is attached to its route only.
    const plain = await chat(gw, 'other-model');
    assertStatus(plain, 200);
    assert.equal(plain.json.choices[0].message.content, mockText(TOKENS));
  });
});

// ---------------------------------------------------------------------------------------------

describe('openai client through the auth plugin', { timeout: 60_000 }, () => {
  let gw;

  before(async () => {
    const mock = await startMock({ tokens: TOKENS, tokenDelayMs: 2 });
    gw = await startGateway({
      ...simpleConfig([mock]),
      plugins: [
        {
          name: 'auth',
          path: plugin('auth'),
          config: { keys: ['k1'] },
          expose_credentials: true,
        },
      ],
    });
  });

  after(async () => {
    await gw?.stop();
  });

  const client = (apiKey) =>
    new OpenAI({ baseURL: `${gw.url}/v1`, apiKey, maxRetries: 0, timeout: 10_000 });

  test('with the right key, plain and streamed chat work', async () => {
    const completion = await client('k1').chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(completion.choices[0].message.content, mockText(TOKENS));

    const stream = await client('k1').chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    let content = '';
    for await (const chunk of stream) content += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(content, mockText(TOKENS));
  });

  test('with a wrong key it throws AuthenticationError (401)', async () => {
    await assert.rejects(
      client('wrong').chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'hi' }],
      }),
      (err) => {
        assert.ok(err instanceof OpenAI.AuthenticationError, `${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 401);
        assert.equal(err.code, 'invalid_api_key');
        return true;
      },
    );
  });
});

describe('ai.* properties', { timeout: 60_000 }, () => {
  let mock;
  let gw;
  const KEY = 'sk-ai-props-0123456789abcdef';

  before(async () => {
    mock = await startMock({ tokens: 5 });
    gw = await startGateway({
      threads: 2,
      keys: [{ id: 'props', key: KEY }],
      providers: [
        {
          id: 'mock',
          type: 'openai',
          endpoints: [mock.url],
          model_mapping: { 'gpt-4o': 'upstream-4o' },
        },
      ],
      routes: [
        { name: 'main', models: ['*'], provider: 'mock' },
        { name: 'special', models: ['special-only'], provider: 'mock' },
      ],
      plugins: [{ name: 'ai', path: plugin('test_ai_properties') }],
    });
  });

  after(async () => {
    await Promise.all([gw?.stop(), mock?.stop()]);
  });

  test('plugins read the model, route, key, provider, upstream and usage', async () => {
    const result = await chat(gw, 'gpt-4o', { headers: { authorization: `Bearer ${KEY}` } });
    assertStatus(result, 200);
    const last = await mock.last();
    assert.equal(last.headers['x-ai-seen'], 'gpt-4o|false|main|props');
    assert.equal(JSON.parse(last.body).model, 'upstream-4o');
    assert.equal(result.headers.get('x-ai-upstream'), `mock|upstream-4o|main|${mock.url}`);
    await waitFor(() => /plugin ai: ai usage in=\d+ out=5 cached=0/.test(gw.stderr), {
      what: 'the usage logged by proxy_on_log',
    });
  });

  test('setting ai.upstream_model and ai.route re-routes the request', async () => {
    const forced = await chat(gw, 'gpt-4o', {
      headers: { authorization: `Bearer ${KEY}`, 'x-force-model': 'chosen-by-plugin', 'x-force-route': 'special' },
    });
    assertStatus(forced, 200);
    assert.equal(JSON.parse((await mock.last()).body).model, 'chosen-by-plugin');
    assert.equal(forced.headers.get('x-ai-upstream'), `mock|chosen-by-plugin|special|${mock.url}`);
    const id = forced.headers.get('x-request-id');
    const line = await gw.waitForLog((l) => l.request_id === id);
    assert.equal(line.route, 'special');

    const nowhere = await chat(gw, 'gpt-4o', {
      headers: { authorization: `Bearer ${KEY}`, 'x-force-route': 'no-such-route' },
    });
    assertStatus(nowhere, 500);
    assert.equal(nowhere.json.error.code, 'plugin_bad_route');
  });
});
