// Bad input and failing upstreams: each becomes the right status code with an OpenAI-shaped
// error body {"error":{"message","type","code"}}.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';

import {
  RawConnection,
  fetchWithTimeout,
  freePort,
  isOpenAiError,
  postJson,
  rawPost,
  startGateway,
  startMock,
} from './lib/harness.js';

const CHAT = { messages: [{ role: 'user', content: 'hi' }] };

function assertOpenAiError(result, status) {
  assert.equal(result.status, status, `expected ${status}, got ${result.status}: ${result.text}`);
  assert.ok(isOpenAiError(result.json), `not an OpenAI error: ${result.text}`);
  const contentType = result.headers.get?.('content-type') ?? result.headers['content-type'];
  assert.match(contentType ?? '', /application\/json/);
}

describe('errors', { timeout: 60_000 }, () => {
  let mock;
  let slowMock;
  let gw;
  let closedPort;

  before(async () => {
    [mock, slowMock, closedPort] = await Promise.all([
      startMock({ tokens: 3 }),
      startMock({ tokens: 3, latencyMs: 3000 }),
      freePort(),
    ]);
    gw = await startGateway(config());
  });

  function config() {
    return {
      threads: 2,
      limits: { max_body_bytes: 4096, max_header_bytes: 8192 },
      timeouts: { first_byte_ms: 500, connect_ms: 1000 },
      providers: [
        { id: 'good', type: 'openai', endpoints: [mock.url] },
        { id: 'slow', type: 'openai', endpoints: [slowMock.url] },
        { id: 'dead', type: 'openai', endpoints: [`http://127.0.0.1:${closedPort}`] },
      ],
      routes: [
        { name: 'good', models: ['gpt-*'], provider: 'good' },
        { name: 'slow', models: ['slow-*'], provider: 'slow' },
        { name: 'dead', models: ['dead-*'], provider: 'dead' },
      ],
    };
  }

  // Bad input must never take the gateway down. If a test did, the next test gets a fresh
  // gateway (so each test reports on its own) and the last test fails naming the culprit.
  const crashes = [];
  let currentTest = '';
  beforeEach(async (t) => {
    if (gw.child.exitCode !== null || gw.child.signalCode !== null) {
      const { code, signal } = await gw.exited;
      crashes.push(`after "${currentTest}": exit code ${code}, signal ${signal}`);
      gw = await startGateway(config());
    }
    currentTest = t.name;
  });

  after(async () => {
    await gw?.stop();
  });

  test('a model that no route matches is 404 model_not_found', async () => {
    const result = await postJson(`${gw.url}/v1/chat/completions`, {
      model: 'claude-unknown',
      ...CHAT,
    });
    assertOpenAiError(result, 404);
    assert.equal(result.json.error.code, 'model_not_found');
    assert.match(result.json.error.message, /claude-unknown/);
  });

  test('malformed JSON is 400', async () => {
    const result = await postJson(
      `${gw.url}/v1/chat/completions`,
      '{"model": "gpt-4", "messages": [',
    );
    assertOpenAiError(result, 400);
  });

  test('JSON without a model is 400', async () => {
    const result = await postJson(`${gw.url}/v1/chat/completions`, CHAT);
    assertOpenAiError(result, 400);
    assert.match(result.json.error.message, /model/);
  });

  test('a body over limits.max_body_bytes is 413 and one under it passes', async () => {
    const small = await postJson(`${gw.url}/v1/chat/completions`, {
      model: 'gpt-small',
      messages: [{ role: 'user', content: 'x'.repeat(3000) }],
    });
    assert.equal(small.status, 200, small.text);

    const big = await postJson(`${gw.url}/v1/chat/completions`, {
      model: 'gpt-big',
      messages: [{ role: 'user', content: 'x'.repeat(5000) }],
    });
    assertOpenAiError(big, 413);
  });

  test('a body over the limit on /v1/messages is 413 in Anthropic\'s shape', async () => {
    const big = await postJson(`${gw.url}/v1/messages`, {
      model: 'gpt-big',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'x'.repeat(5000) }],
    });
    assert.equal(big.status, 413, big.text);
    assert.equal(big.json?.type, 'error', big.text);
    assert.equal(big.json.error.type, 'request_too_large', big.text);
    assert.match(big.json.error.message, /max_body_bytes/);
  });

  test('headers over limits.max_header_bytes are 431 and ones under it pass', async () => {
    const conn = await RawConnection.open(gw.port);
    try {
      const ok = await conn.request(
        rawPost(
          '/v1/chat/completions',
          { model: 'gpt-hdr', ...CHAT },
          { 'x-padding': 'p'.repeat(4000) },
        ),
      );
      assert.equal(ok.status, 200, ok.text);
    } finally {
      conn.close();
    }
    const conn2 = await RawConnection.open(gw.port);
    try {
      const res = await conn2.request(
        rawPost(
          '/v1/chat/completions',
          { model: 'gpt-hdr', ...CHAT },
          { 'x-padding': 'p'.repeat(16000) },
        ),
      );
      assert.ok(res, 'the gateway closed the connection without an answer');
      assertOpenAiError(res, 431);
    } finally {
      conn2.close();
    }
  });

  test('an unreachable upstream is 502', async () => {
    const result = await postJson(`${gw.url}/v1/chat/completions`, {
      model: 'dead-model',
      ...CHAT,
    });
    assertOpenAiError(result, 502);
  });

  test('an upstream slower than timeouts.first_byte_ms is 504', async () => {
    const start = Date.now();
    const result = await postJson(`${gw.url}/v1/chat/completions`, {
      model: 'slow-model',
      ...CHAT,
    });
    const elapsed = Date.now() - start;
    assertOpenAiError(result, 504);
    assert.ok(elapsed >= 450 && elapsed < 2500, `answered after ${elapsed} ms`);
  });

  test('an upstream error status and body are relayed', async () => {
    const result = await postJson(
      `${gw.url}/v1/chat/completions`,
      { model: 'gpt-400', ...CHAT },
      { headers: { 'x-mock-status': '400' } },
    );
    assertOpenAiError(result, 400);
  });

  test('an unknown path is 404 in the OpenAI error shape', async () => {
    const res = await fetchWithTimeout(`${gw.url}/v1/does-not-exist`);
    const text = await res.text();
    assertOpenAiError(
      { status: res.status, headers: res.headers, text, json: JSON.parse(text) },
      404,
    );
  });

  test('errors are logged with their status', async () => {
    const id = `err-log-${Date.now()}`;
    await postJson(
      `${gw.url}/v1/chat/completions`,
      { model: 'claude-unknown', ...CHAT },
      { headers: { 'x-request-id': id } },
    );
    const line = await gw.waitForLog((l) => l.request_id === id);
    assert.equal(line.status, 404);
    assert.equal(line.model, 'claude-unknown');
  });

  test('the gateway keeps serving after all of the above', async () => {
    if (gw.child.exitCode !== null || gw.child.signalCode !== null) {
      const { code, signal } = await gw.exited;
      crashes.push(`after "${currentTest}": exit code ${code}, signal ${signal}`);
    }
    assert.deepEqual(crashes, [], 'the gateway crashed');
    const result = await postJson(`${gw.url}/v1/chat/completions`, { model: 'gpt-after', ...CHAT });
    assert.equal(result.status, 200, result.text);
    assert.equal(result.json.choices[0].message.content, 'tok0 tok1 tok2 ');
  });
});

describe('an upstream answer that breaks off', () => {
  test('before any byte reached the client: 502 upstream_broken', async () => {
    const net = await import('node:net');
    // Promises 100 bytes of body, sends none, closes.
    const server = net.createServer((socket) => {
      socket.once('data', () => {
        socket.end(
          'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n',
        );
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address();
    const gw = await startGateway({
      threads: 1,
      providers: [{ id: 'broken', type: 'openai', endpoints: [`http://127.0.0.1:${port}`] }],
      routes: [{ name: 'all', models: ['*'], provider: 'broken', retry: { attempts: 1 } }],
    });
    try {
      const result = await postJson(`${gw.url}/v1/chat/completions`, {
        model: 'm',
        messages: [{ role: 'user', content: 'hi' }],
      });
      assert.equal(result.status, 502);
      assert.equal(result.json.error.code, 'upstream_broken');
      assert.match(result.json.error.message, /upstream body/);
    } finally {
      await gw.stop();
      server.close();
    }
  });
});
