// Forwarding and routing: what the client sends reaches the right upstream unchanged, and what
// the upstream answers reaches the client, with request ids and an access log line.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import {
  RawConnection,
  fetchWithTimeout,
  mockText,
  postJson,
  rawPost,
  simpleConfig,
  startGateway,
  startMock,
} from './lib/harness.js';

const MOCK_TOKENS = 5;

describe('proxy', { timeout: 60_000 }, () => {
  // One mock per route so the mock that saw a request tells which route was taken.
  const mocks = {};
  let gw;

  before(async () => {
    const names = ['exact', 'gpt4', 'gpt4o', 'fallback'];
    const started = await Promise.all(names.map(() => startMock({ tokens: MOCK_TOKENS })));
    names.forEach((name, i) => {
      mocks[name] = started[i];
    });
    gw = await startGateway({
      threads: 2,
      providers: names.map((name) => ({
        id: `p-${name}`,
        type: 'openai',
        endpoints: [mocks[name].url],
      })),
      routes: [
        { name: 'fallback', models: ['*'], provider: 'p-fallback' },
        { name: 'gpt4', models: ['gpt-4*'], provider: 'p-gpt4' },
        { name: 'gpt4o', models: ['gpt-4o*'], provider: 'p-gpt4o' },
        { name: 'exact', models: ['gpt-4o-special', 'my-alias'], provider: 'p-exact' },
      ],
    });
  });

  after(async () => {
    await gw?.stop();
  });

  // Sends a chat request for `model` and returns the name of the mock that received it (the one
  // whose last request carries this request's id).
  let sequence = 0;
  async function routedTo(model) {
    const id = `route-${model}-${++sequence}`;
    const { status, text } = await postJson(
      `${gw.url}/v1/chat/completions`,
      { model, messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-request-id': id } },
    );
    assert.equal(status, 200, `model ${model}: ${text}`);
    const hit = [];
    for (const [name, mock] of Object.entries(mocks)) {
      const res = await fetchWithTimeout(`${mock.url}/mock/last`);
      const last = res.status === 200 ? await res.json() : (await res.arrayBuffer(), null);
      if (last?.headers['x-request-id'] === id) hit.push(name);
    }
    assert.equal(hit.length, 1, `model ${model} reached ${JSON.stringify(hit)}`);
    return hit[0];
  }

  test('GET /health answers 200', async () => {
    const res = await fetchWithTimeout(`${gw.url}/health`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  test('an exact model name wins over matching wildcards', async () => {
    assert.equal(await routedTo('gpt-4o-special'), 'exact');
    assert.equal(await routedTo('my-alias'), 'exact');
  });

  test('the longest matching prefix wildcard wins', async () => {
    assert.equal(await routedTo('gpt-4o-mini'), 'gpt4o');
    assert.equal(await routedTo('gpt-4-turbo'), 'gpt4');
    assert.equal(await routedTo('gpt-4'), 'gpt4');
  });

  test('"*" catches every other model', async () => {
    assert.equal(await routedTo('llama-3-8b'), 'fallback');
    assert.equal(await routedTo('gpt-3.5-turbo'), 'fallback');
  });

  test('the request body reaches the upstream byte for byte', async () => {
    // Odd spacing, key order, escapes, non-ASCII and number spellings a re-encoder would change.
    const body =
      '{ "messages":[{"content":"h\\u00e9llo \\"w\\" \u00fcn\u00efc\u00f6d\u00e9 \u{1F600}","role":"user"}],' +
      '\n  "temperature": 1.50, "top_p":1e0, "model" : "llama-raw",  "extra_field": {"a":[1,2,{}]} }';
    const { status, text } = await postJson(`${gw.url}/v1/chat/completions`, body);
    assert.equal(status, 200, text);
    const last = await mocks.fallback.last();
    assert.equal(last.method, 'POST');
    assert.equal(last.target, '/v1/chat/completions');
    assert.equal(last.body, body);
  });

  test('the upstream answer is relayed to the client', async () => {
    const { status, json, headers } = await postJson(`${gw.url}/v1/chat/completions`, {
      model: 'llama-answer',
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(status, 200);
    assert.match(headers.get('content-type'), /application\/json/);
    assert.equal(json.object, 'chat.completion');
    assert.equal(json.model, 'llama-answer');
    assert.equal(json.choices[0].message.role, 'assistant');
    assert.equal(json.choices[0].message.content, mockText(MOCK_TOKENS));
  });

  test('POST /v1/completions is forwarded to the same path', async () => {
    const { status, json, text } = await postJson(`${gw.url}/v1/completions`, {
      model: 'llama-completion',
      prompt: 'Once upon a time',
    });
    assert.equal(status, 200, text);
    assert.equal(json.object, 'text_completion');
    assert.equal(json.choices[0].text, mockText(MOCK_TOKENS));
    assert.equal((await mocks.fallback.last()).target, '/v1/completions');
  });

  test('POST /v1/embeddings is forwarded to the same path', async () => {
    const { status, json, text } = await postJson(`${gw.url}/v1/embeddings`, {
      model: 'gpt-4o-embed',
      input: ['one', 'two'],
    });
    assert.equal(status, 200, text);
    assert.equal(json.object, 'list');
    assert.equal(json.data.length, 2);
    for (const item of json.data) {
      assert.ok(Array.isArray(item.embedding) && item.embedding.length > 0);
      assert.ok(item.embedding.every((x) => typeof x === 'number'));
    }
    const last = await mocks.gpt4o.last();
    assert.equal(last.target, '/v1/embeddings');
  });

  test('x-request-id from the client goes upstream and comes back', async () => {
    const id = 'it-request-id-0123456789';
    const { status, headers } = await postJson(
      `${gw.url}/v1/chat/completions`,
      { model: 'llama-id', messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-request-id': id } },
    );
    assert.equal(status, 200);
    assert.equal(headers.get('x-request-id'), id);
    const last = await mocks.fallback.last();
    assert.equal(last.headers['x-request-id'], id);
  });

  test('without x-request-id the gateway makes one, sends it upstream and returns it', async () => {
    const ids = new Set();
    for (let i = 0; i < 2; i++) {
      const { status, headers } = await postJson(`${gw.url}/v1/chat/completions`, {
        model: 'llama-noid',
        messages: [{ role: 'user', content: 'hi' }],
      });
      assert.equal(status, 200);
      const id = headers.get('x-request-id');
      assert.ok(id && id.length >= 8, `generated id ${id}`);
      assert.equal((await mocks.fallback.last()).headers['x-request-id'], id);
      ids.add(id);
    }
    assert.equal(ids.size, 2, 'each request gets its own id');
  });

  test('GET /v1/models merges route names and upstream models without patterns or duplicates', async () => {
    const upstream = await (await fetchWithTimeout(`${mocks.fallback.url}/v1/models`)).json();
    const upstreamIds = upstream.data.map((m) => m.id);
    assert.ok(upstreamIds.length > 0, 'the mock reports models');

    const res = await fetchWithTimeout(`${gw.url}/v1/models`);
    assert.equal(res.status, 200);
    const json = await res.json();
    assert.equal(json.object, 'list');
    const ids = json.data.map((m) => m.id);
    for (const m of json.data) {
      assert.equal(typeof m.id, 'string');
      assert.equal(m.object, 'model');
    }
    assert.ok(ids.includes('gpt-4o-special'), `ids: ${ids}`);
    assert.ok(ids.includes('my-alias'), `ids: ${ids}`);
    for (const id of upstreamIds)
      assert.ok(ids.includes(id), `upstream model ${id} missing: ${ids}`);
    assert.ok(!ids.some((id) => id.includes('*')), `patterns listed: ${ids}`);
    assert.equal(new Set(ids).size, ids.length, `duplicates: ${ids}`);
  });

  test('several sequential requests work on one keep-alive connection', async () => {
    const conn = await RawConnection.open(gw.port);
    try {
      for (let i = 0; i < 5; i++) {
        const res = await conn.request(
          rawPost('/v1/chat/completions', {
            model: `llama-keepalive-${i}`,
            messages: [{ role: 'user', content: `n${i}` }],
          }),
        );
        assert.ok(res, `request ${i} got no answer (connection closed)`);
        assert.equal(res.status, 200, `request ${i}: ${res.text}`);
        assert.equal(res.json.model, `llama-keepalive-${i}`);
        assert.notEqual(res.headers.connection?.toLowerCase(), 'close');
      }
      const health = await conn.request('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(health.status, 200);
    } finally {
      conn.close();
    }
  });

  test('each request writes one JSON access log line', async () => {
    const id = `log-${Date.now()}`;
    const { status, text } = await postJson(
      `${gw.url}/v1/chat/completions`,
      { model: 'gpt-4-log', messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-request-id': id } },
    );
    assert.equal(status, 200);
    const line = await gw.waitForLog((l) => l.request_id === id);
    assert.equal(line.route, 'gpt4');
    assert.equal(line.model, 'gpt-4-log');
    assert.equal(line.status, 200);
    assert.match(String(line.upstream), new RegExp(`127\\.0\\.0\\.1:${mocks.gpt4.port}`));
    assert.ok(line.bytes_out >= Buffer.byteLength(text), `bytes_out ${line.bytes_out}`);
    assert.equal(typeof line.duration_ms, 'number');
    assert.equal(typeof line.ttfb_ms, 'number');
    assert.ok(line.ttfb_ms >= 0 && line.ttfb_ms <= line.duration_ms, JSON.stringify(line));
    assert.equal(gw.accessLog().filter((l) => l.request_id === id).length, 1);
  });
});

// An upstream that closes idle keep-alive connections after 50 ms, as servers with a short
// keep-alive do: the gateway takes a pooled connection that was idle for
// a moment without probing it, finds it closed and sends the request again on a new one.
describe('pooled upstream connections', { timeout: 30_000 }, () => {
  test('a pooled connection the upstream closed is replaced, and the request succeeds', async () => {
    let connections = 0;
    let requests = 0;
    const upstream = http.createServer((req, res) => {
      requests++;
      req.resume();
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            id: `c${requests}`,
            object: 'chat.completion',
            choices: [{ index: 0, message: { role: 'assistant', content: 'ok' } }],
          }),
        );
      });
    });
    upstream.on('connection', () => connections++);
    // Each connection is closed 50 ms after its answer, keep-alive headers notwithstanding.
    upstream.on('request', (req, res) => {
      res.on('finish', () => setTimeout(() => req.socket.destroy(), 50));
    });
    await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const gw = await startGateway({
      ...simpleConfig([{ url: `http://127.0.0.1:${upstream.address().port}` }]),
      threads: 1,
    });
    try {
      for (let i = 0; i < 3; i++) {
        const result = await postJson(`${gw.url}/v1/chat/completions`, {
          model: 'm',
          messages: [{ role: 'user', content: 'hi' }],
        });
        assert.equal(result.status, 200, result.text);
        assert.equal(result.json.choices[0].message.content, 'ok');
        await new Promise((resolve) => setTimeout(resolve, 200)); // the upstream closes it
      }
      assert.equal(requests, 3, 'each request reached the upstream once');
      assert.equal(connections, 3, 'each request after a close needed a new connection');
    } finally {
      await gw.stop();
      upstream.close();
    }
  });
});

// Client timeouts are deadlines the gateway sets per read and lifts after it (one timer per
// connection, re-armed lazily): a connection in use outlives them, an idle one does not.
describe('keep-alive timeouts', { timeout: 30_000 }, () => {
  const KEEPALIVE_MS = 400;
  let mock;
  let gw;

  before(async () => {
    mock = await startMock({ tokens: MOCK_TOKENS });
    gw = await startGateway({
      ...simpleConfig([mock]),
      threads: 1,
      timeouts: { keepalive_ms: KEEPALIVE_MS, client_read_ms: 300 },
    });
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('a connection in use stays open past keepalive_ms; once idle it is closed after it', async () => {
    const conn = await RawConnection.open(gw.port);
    try {
      const body = { model: 'keepalive', messages: [{ role: 'user', content: 'hi' }] };
      // Eight requests 200 ms apart: 1.6 s on one connection, four times keepalive_ms.
      for (let i = 0; i < 8; i++) {
        const res = await conn.request(rawPost('/v1/chat/completions', body));
        assert.equal(res?.status, 200, `request ${i} on the kept connection: ${res?.text}`);
        assert.ok(!conn.closed, `the connection was closed after request ${i}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const idleSince = Date.now() - 200;
      while (!conn.closed && Date.now() - idleSince < 5000) await conn.waitData(idleSince + 5000);
      const idleMs = Date.now() - idleSince;
      assert.ok(conn.closed, 'the idle connection was never closed');
      assert.ok(
        idleMs >= KEEPALIVE_MS - 50 && idleMs < KEEPALIVE_MS + 1000,
        `closed after ${idleMs} ms idle (keepalive_ms ${KEEPALIVE_MS})`,
      );
    } finally {
      conn.close();
    }
  });
});
