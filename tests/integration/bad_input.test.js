// The bad-input suite: hostile or broken clients and upstreams. Each case must get a clear
// error (the OpenAI or the Anthropic error shape, by path, with the right status) or be relayed
// correctly, and after each one the gateway still serves a normal request.
//
// errors.test.js covers the plain cases (malformed JSON on chat, a Content-Length over the
// body limit, one oversized header, unreachable and slow upstreams, a body that breaks off
// before the first byte); this file covers what they leave out.
//
// Where an upstream must misbehave in a way the built-in mock (`sluice mock`) cannot — garbage
// instead of HTTP, truncated chunks, a reset in the middle of a stream, an endless stream, huge
// SSE lines — a small Node `net` server in this file plays the hostile upstream.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  RawConnection,
  fetchWithTimeout,
  isOpenAiError,
  postJson,
  rawPost,
  readSse,
  startGateway,
  startMock,
  waitFor,
} from './lib/harness.js';

const CHAT = { messages: [{ role: 'user', content: 'hi' }] };
const MESSAGES = { max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] };

function isAnthropicError(json) {
  return (
    json?.type === 'error' &&
    typeof json.error?.type === 'string' &&
    typeof json.error?.message === 'string' &&
    json.error.message.length > 0
  );
}

function headerOf(result, name) {
  return result.headers.get?.(name) ?? result.headers[name];
}

// `result` is { status, headers, text, json } from postJson or RawConnection.
function assertOpenAiError(result, status) {
  assert.equal(result.status, status, `expected ${status}, got ${result.status}: ${result.text}`);
  assert.ok(isOpenAiError(result.json), `not an OpenAI error: ${result.text}`);
  assert.match(headerOf(result, 'content-type') ?? '', /application\/json/);
}

function assertAnthropicError(result, status) {
  assert.equal(result.status, status, `expected ${status}, got ${result.status}: ${result.text}`);
  assert.ok(isAnthropicError(result.json), `not an Anthropic error: ${result.text}`);
  assert.match(headerOf(result, 'content-type') ?? '', /application\/json/);
}

// Resolves once the raw connection is closed by the peer; fails after `timeoutMs`.
async function waitClosed(conn, timeoutMs = 3000, what = 'the gateway to close the connection') {
  await waitFor(() => conn.closed, { timeoutMs, intervalMs: 10, what });
}

// Reads a whole fetch() body; a stream the gateway cut shows as `error`.
async function readAll(res) {
  const decoder = new TextDecoder();
  let text = '';
  try {
    for await (const chunk of res.body) text += decoder.decode(chunk, { stream: true });
    return { text, error: null };
  } catch (err) {
    return { text, error: err };
  }
}

function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

// The gateway answers a normal chat request (after whatever the test did to it).
async function assertServing(gw, model = 'gpt-after') {
  assert.equal(gw.child.exitCode, null, `the gateway exited:\n${gw.stderr}`);
  assert.equal(gw.child.signalCode, null, `the gateway died:\n${gw.stderr}`);
  const result = await postJson(`${gw.url}/v1/chat/completions`, { model, ...CHAT });
  assert.equal(result.status, 200, result.text);
  assert.equal(result.json.choices[0].message.content, 'tok0 tok1 tok2 ');
}

// ---------------------------------------------------------------------------------------------
// Clients

describe('bad input from clients', { timeout: 90_000 }, () => {
  let mock;
  let gw;
  const CLIENT_READ_MS = 400;

  before(async () => {
    mock = await startMock({ tokens: 3 });
    gw = await startGateway({
      // One event loop: a stuck client would stall everybody else on it.
      threads: 1,
      limits: { max_body_bytes: 4096, max_header_bytes: 8192 },
      timeouts: { client_read_ms: CLIENT_READ_MS },
      providers: [{ id: 'good', type: 'openai', endpoints: [mock.url] }],
      routes: [{ name: 'good', models: ['gpt-*'], provider: 'good' }],
    });
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  afterEach(async () => {
    await assertServing(gw);
  });

  // Sends `bytes` one at a time every `intervalMs` until the gateway closes the connection;
  // resolves { closedAfterMs, sent } (sent: bytes written before the close).
  async function dribble(bytes, intervalMs) {
    const conn = await RawConnection.open(gw.port);
    const start = Date.now();
    let sent = 0;
    while (sent < bytes.length && !conn.closed) {
      conn.write(bytes.subarray(sent, sent + 1));
      sent++;
      await sleep(intervalMs);
    }
    await waitClosed(conn, 5000);
    const closedAfterMs = Date.now() - start;
    const answered = conn.buffer.toString('latin1');
    conn.close();
    return { closedAfterMs, sent, answered };
  }

  test('slowloris: headers dribbled byte by byte are cut after client_read_ms, others served', async () => {
    const head = Buffer.from(
      'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        'X-Slow: ' +
        's'.repeat(200) +
        '\r\nContent-Length: 2\r\n\r\n{}',
    );
    // Five slow clients at once (byte every 40 ms: the whole head would take ~12 s).
    const slow = Array.from({ length: 5 }, () => dribble(head, 40));
    // Meanwhile normal clients are served at their normal speed.
    await sleep(100);
    for (let i = 0; i < 5; i++) {
      const start = Date.now();
      const result = await postJson(`${gw.url}/v1/chat/completions`, { model: 'gpt-x', ...CHAT });
      assert.equal(result.status, 200, result.text);
      assert.ok(Date.now() - start < 1000, `a normal request took ${Date.now() - start} ms`);
    }
    for (const { closedAfterMs, sent } of await Promise.all(slow)) {
      assert.ok(sent < head.length, 'the slow client could send its whole request');
      assert.ok(
        closedAfterMs >= CLIENT_READ_MS / 2 && closedAfterMs < CLIENT_READ_MS + 1500,
        `closed after ${closedAfterMs} ms (client_read_ms ${CLIENT_READ_MS})`,
      );
    }
  });

  test('slowloris: a body dribbled byte by byte is cut too, and nothing reaches the upstream', async () => {
    const before = (await mock.stats()).requests;
    const body = JSON.stringify({ model: 'gpt-slow-body', ...CHAT, pad: 'p'.repeat(300) });
    const head =
      'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const conn = await RawConnection.open(gw.port);
    conn.write(head);
    const start = Date.now();
    for (let i = 0; i < body.length && !conn.closed; i++) {
      conn.write(body[i]);
      await sleep(20);
    }
    await waitClosed(conn, 5000);
    const elapsed = Date.now() - start;
    conn.close();
    assert.ok(elapsed < 2 * CLIENT_READ_MS + 1500, `closed after ${elapsed} ms`);
    assert.equal((await mock.stats()).requests, before);
  });

  test('many small headers over max_header_bytes are 431, the connection closed', async () => {
    const headers = {};
    for (let i = 0; i < 400; i++) headers[`x-h${i}`] = 'v'.repeat(20);
    const conn = await RawConnection.open(gw.port);
    try {
      const res = await conn.request(
        rawPost('/v1/chat/completions', { model: 'gpt-h', ...CHAT }, headers),
      );
      assert.ok(res, 'the gateway closed the connection without an answer');
      assertOpenAiError(res, 431);
      await waitClosed(conn);
    } finally {
      conn.close();
    }
  });

  test("headers over max_header_bytes on /v1/messages are 431 in Anthropic's shape", async () => {
    const conn = await RawConnection.open(gw.port);
    try {
      const res = await conn.request(
        rawPost(
          '/v1/messages',
          { model: 'gpt-h', ...MESSAGES },
          { 'x-padding': 'p'.repeat(10_000) },
        ),
      );
      assert.ok(res, 'the gateway closed the connection without an answer');
      assertAnthropicError(res, 431);
      await waitClosed(conn);
    } finally {
      conn.close();
    }
  });

  test('a request line alone over max_header_bytes is 431', async () => {
    for (const [path, check] of [
      ['/v1/models', assertOpenAiError],
      ['/v1/messages', assertAnthropicError],
    ]) {
      const conn = await RawConnection.open(gw.port);
      try {
        const res = await conn.request(
          `POST ${path}?${'q'.repeat(10_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
        );
        assert.ok(res, 'the gateway closed the connection without an answer');
        check(res, 431);
      } finally {
        conn.close();
      }
    }
  });

  // Sends a chunked body of `total` bytes in 1 KiB chunks; returns the gateway's answer.
  async function postChunked(path, total) {
    const conn = await RawConnection.open(gw.port);
    try {
      conn.write(
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          'Transfer-Encoding: chunked\r\n\r\n',
      );
      const prefix =
        JSON.stringify({ model: 'gpt-chunked', ...MESSAGES }).slice(0, -1) + ',"pad":"';
      let body = prefix + 'x'.repeat(Math.max(0, total - prefix.length - 2)) + '"}';
      while (body.length > 0 && !conn.closed) {
        const piece = body.slice(0, 1024);
        body = body.slice(1024);
        conn.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
        await sleep(1);
      }
      if (!conn.closed) conn.write('0\r\n\r\n');
      const res = await conn.readResponse(5000);
      await waitClosed(conn).catch(() => {});
      return { res, closed: conn.closed };
    } finally {
      conn.close();
    }
  }

  test('a chunked body over max_body_bytes is 413 (OpenAI shape on chat), one under it passes', async () => {
    const small = await postChunked('/v1/chat/completions', 3000);
    assert.equal(small.res.status, 200, small.res.text);
    const big = await postChunked('/v1/chat/completions', 20_000);
    assert.ok(big.res, 'no answer');
    assertOpenAiError(big.res, 413);
    assert.ok(big.closed, 'the connection stays open after a body that was not read');
  });

  test("a chunked body over max_body_bytes on /v1/messages is 413 in Anthropic's shape", async () => {
    const big = await postChunked('/v1/messages', 20_000);
    assert.ok(big.res, 'no answer');
    assertAnthropicError(big.res, 413);
    assert.equal(big.res.json.error.type, 'request_too_large');
  });

  test('a Content-Length far over the limit is 413 before any body is sent', async () => {
    const conn = await RawConnection.open(gw.port);
    try {
      const res = await conn.request(
        'POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
          'Content-Length: 99999999999\r\n\r\n',
      );
      assertAnthropicError(res, 413);
      await waitClosed(conn);
    } finally {
      conn.close();
    }
  });

  test('invalid UTF-8 inside a JSON string: a clear 400 (chat and messages)', async () => {
    const before = (await mock.stats()).requests;
    const bad = Buffer.concat([
      Buffer.from('{"model":"gpt-utf8","max_tokens":16,"messages":[{"role":"user","content":"a'),
      Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]),
      Buffer.from('"}]}'),
    ]);
    for (const [path, check] of [
      ['/v1/chat/completions', assertOpenAiError],
      ['/v1/messages', assertAnthropicError],
    ]) {
      const conn = await RawConnection.open(gw.port);
      try {
        const head =
          `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${bad.length}\r\n\r\n`;
        const res = await conn.request(Buffer.concat([Buffer.from(head), bad]));
        check(res, 400);
        assert.match(res.json.error.message, /UTF-8|utf-8|JSON/i);
      } finally {
        conn.close();
      }
    }
    assert.equal((await mock.stats()).requests, before, 'invalid UTF-8 was sent upstream');
  });

  test('invalid JSON in many forms is 400 in the shape of the path', async () => {
    const deep = '['.repeat(3000); // as deep as the body limit allows
    const bodies = [
      '',
      'null',
      '[]',
      '"a string"',
      '42',
      '{"model": "gpt-x", "messages": [}',
      '{"model": "gpt-x", "messages": []} trailing',
      '{"model": 42, "messages": []}',
      `{"model": "gpt-x", "messages": ${deep}`,
      '\u0000\u0001\u0002',
    ];
    for (const body of bodies) {
      const chat = await postJson(`${gw.url}/v1/chat/completions`, body);
      assertOpenAiError(chat, 400);
      const messages = await postJson(`${gw.url}/v1/messages`, body);
      assertAnthropicError(messages, 400);
      assert.equal(messages.json.error.type, 'invalid_request_error', messages.text);
    }
  });

  // Smuggling: a request framed ambiguously is refused with 400 and the connection closed, so
  // the request hidden in its body is never read as the next one and never reaches the upstream.
  const smuggled = rawPost('/v1/chat/completions', { model: 'gpt-smuggled', ...CHAT });

  async function assertRejected(request, { status = 400, why, check = assertOpenAiError } = {}) {
    const before = (await mock.stats()).requests;
    const conn = await RawConnection.open(gw.port);
    try {
      const res = await conn.request(request, 5000);
      assert.ok(res, `${why}: the connection was closed without an answer`);
      check(res, status);
      await sleep(100);
      assert.equal((await mock.stats()).requests, before, `${why}: a request reached the upstream`);
      await waitClosed(conn, 3000, `${why}: the gateway to close the connection`);
      assert.equal(conn.buffer.length, 0, `${why}: a second answer followed: ${conn.buffer}`);
    } finally {
      conn.close();
    }
  }

  function head(lines, path = '/v1/chat/completions') {
    return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines.join('\r\n')}\r\n\r\n`;
  }

  test('smuggling: Content-Length with Transfer-Encoding is 400 and the connection closed', async () => {
    const chunkedEnd = '0\r\n\r\n';
    const body = Buffer.concat([Buffer.from(chunkedEnd), smuggled]);
    await assertRejected(
      Buffer.concat([
        Buffer.from(head([`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked'])),
        body,
      ]),
      { why: 'CL then TE' },
    );
    await assertRejected(
      Buffer.concat([
        Buffer.from(head(['Transfer-Encoding: chunked', `Content-Length: ${chunkedEnd.length}`])),
        Buffer.from(chunkedEnd),
        smuggled,
      ]),
      { why: 'TE then CL' },
    );
  });

  test('smuggling: two different Content-Length headers are 400', async () => {
    const inner = JSON.stringify({ model: 'gpt-x', ...CHAT });
    await assertRejected(
      Buffer.concat([
        Buffer.from(
          head([
            `Content-Length: ${inner.length}`,
            `Content-Length: ${inner.length + smuggled.length}`,
          ]),
        ),
        Buffer.from(inner),
        smuggled,
      ]),
      { why: 'two Content-Length' },
    );
    await assertRejected(
      Buffer.concat([
        Buffer.from(head([`Content-Length: ${inner.length}, ${inner.length + smuggled.length}`])),
        Buffer.from(inner),
        smuggled,
      ]),
      { why: 'a Content-Length list' },
    );
  });

  test('smuggling: a Transfer-Encoding other than chunked is 400', async () => {
    // The body is a whole request: a server that took the body as empty would read it as the
    // next request on the connection.
    for (const te of [
      'Transfer-Encoding: xchunked',
      'Transfer-Encoding: chunked, identity',
      'Transfer-Encoding: gzip',
      'Transfer-Encoding: identity',
      'Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip',
    ]) {
      await assertRejected(Buffer.concat([Buffer.from(head([te])), smuggled]), { why: te });
    }
    await assertRejected(
      Buffer.concat([Buffer.from(head(['Transfer-Encoding: gzip'], '/v1/messages')), smuggled]),
      { why: 'gzip on /v1/messages', check: assertAnthropicError },
    );
  });

  test('smuggling: whitespace before the colon of a header is 400', async () => {
    const inner = JSON.stringify({ model: 'gpt-x', ...CHAT });
    const chunked = `${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`;
    await assertRejected(
      Buffer.concat([
        Buffer.from(head(['Transfer-Encoding : chunked'])),
        Buffer.from(chunked),
        smuggled,
      ]),
      { why: 'space before colon' },
    );
  });

  test('smuggling: obs-fold line folding is 400', async () => {
    const inner = JSON.stringify({ model: 'gpt-x', ...CHAT });
    await assertRejected(
      Buffer.concat([
        Buffer.from(head(['X-Note: first', ' folded', `Content-Length: ${inner.length}`])),
        Buffer.from(inner),
      ]),
      { why: 'obs-fold in X-Note' },
    );
    await assertRejected(
      Buffer.concat([
        Buffer.from(
          head([`Content-Length: ${inner.length}`, 'Transfer-Encoding: identity', '\tchunked']),
        ),
        Buffer.from(inner),
        smuggled,
      ]),
      { why: 'obs-fold in Transfer-Encoding' },
    );
    await assertRejected(
      Buffer.concat([
        Buffer.from(
          head(['X-Note: first', '\tfolded', `Content-Length: ${inner.length}`], '/v1/messages'),
        ),
        Buffer.from(inner),
      ]),
      { why: 'obs-fold on /v1/messages', check: assertAnthropicError },
    );
    // A header value that merely contains spaces and tabs is fine.
    const ok = await postJson(
      `${gw.url}/v1/chat/completions`,
      { model: 'gpt-x', ...CHAT },
      {
        headers: { 'x-note': 'a \t b' },
      },
    );
    assert.equal(ok.status, 200, ok.text);
  });

  test('smuggling: bad chunk sizes are 400', async () => {
    const inner = JSON.stringify({ model: 'gpt-x', ...CHAT });
    for (const [why, chunks] of [
      ['a non-hex size', `zz\r\n${inner}\r\n0\r\n\r\n`],
      ['a negative size', `-1\r\n${inner}\r\n0\r\n\r\n`],
      ['a 0x prefix', `0x${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`],
      ['an overflowing size', `1${'0'.repeat(20)}\r\n${inner}\r\n0\r\n\r\n`],
      ['data longer than its size', `2\r\n${inner}\r\n0\r\n\r\n`],
    ]) {
      await assertRejected(
        Buffer.concat([
          Buffer.from(head(['Transfer-Encoding: chunked'])),
          Buffer.from(chunks),
          smuggled,
        ]),
        { why },
      );
    }
    await assertRejected(
      Buffer.concat([
        Buffer.from(head(['Transfer-Encoding: chunked'], '/v1/messages')),
        Buffer.from('zz\r\n{}\r\n0\r\n\r\n'),
        smuggled,
      ]),
      { why: 'a non-hex size on /v1/messages', check: assertAnthropicError },
    );
  });

  test('HTTP/1.0: answered, then the connection closed', async () => {
    const body = JSON.stringify({ model: 'gpt-10', ...CHAT });
    const conn = await RawConnection.open(gw.port);
    try {
      const res = await conn.request(
        'POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n' +
          `Content-Length: ${body.length}\r\n\r\n${body}`,
      );
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.choices[0].message.content, 'tok0 tok1 tok2 ');
      assert.notEqual(res.headers['transfer-encoding'], 'chunked');
      await waitClosed(conn);
    } finally {
      conn.close();
    }
  });

  test('HTTP/1.0 with Connection: keep-alive keeps the connection for a second request', async () => {
    const body = JSON.stringify({ model: 'gpt-10ka', ...CHAT });
    const request =
      'POST /v1/chat/completions HTTP/1.0\r\nConnection: keep-alive\r\n' +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const conn = await RawConnection.open(gw.port);
    try {
      const first = await conn.request(request);
      assert.equal(first.status, 200, first.text);
      assert.match(first.headers.connection ?? '', /keep-alive/i);
      const second = await conn.request(request);
      assert.equal(second.status, 200, second.text);
      assert.equal(conn.closed, false);
    } finally {
      conn.close();
    }
  });

  test('HTTP/1.0 streamed answer: no chunked framing, ends with the connection', async () => {
    const body = JSON.stringify({ model: 'gpt-10s', stream: true, ...CHAT });
    const conn = await RawConnection.open(gw.port);
    try {
      const res = await conn.request(
        'POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n' +
          `Content-Length: ${body.length}\r\n\r\n${body}`,
      );
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers['transfer-encoding'], undefined);
      assert.match(res.text, /tok2/);
      assert.match(res.text, /data: \[DONE\]/);
      assert.ok(conn.closed);
    } finally {
      conn.close();
    }
  });

  test('pipelined requests on one connection are answered in order', async () => {
    const requests = [
      rawPost('/v1/chat/completions', { model: 'gpt-p1', ...CHAT }, { 'x-request-id': 'pipe-1' }),
      Buffer.from(
        'GET /v1/does-not-exist HTTP/1.1\r\nHost: 127.0.0.1\r\nx-request-id: pipe-2\r\n\r\n',
      ),
      rawPost(
        '/v1/chat/completions',
        { model: 'gpt-p3', stream: true, ...CHAT },
        { 'x-request-id': 'pipe-3' },
      ),
      rawPost('/v1/messages', { model: 'gpt-p4', ...MESSAGES }, { 'x-request-id': 'pipe-4' }),
      rawPost('/v1/chat/completions', '{"model":', { 'x-request-id': 'pipe-5' }),
      rawPost('/v1/chat/completions', { model: 'gpt-p6', ...CHAT }, { 'x-request-id': 'pipe-6' }),
    ];
    const conn = await RawConnection.open(gw.port);
    try {
      conn.write(Buffer.concat(requests)); // all in one write
      const answers = [];
      for (let i = 0; i < requests.length; i++) answers.push(await conn.readResponse(5000));
      assert.deepEqual(
        answers.map((a) => a?.headers['x-request-id']),
        ['pipe-1', 'pipe-2', 'pipe-3', 'pipe-4', 'pipe-5', 'pipe-6'],
      );
      assert.deepEqual(
        answers.map((a) => a.status),
        [200, 404, 200, 200, 400, 200],
      );
      assert.equal(answers[0].json.choices[0].message.content, 'tok0 tok1 tok2 ');
      assert.match(answers[2].text, /data: \[DONE\]/);
      assert.equal(answers[3].json.type, 'message');
      assert.equal(answers[5].json.choices[0].message.content, 'tok0 tok1 tok2 ');
      assert.equal(conn.closed, false, 'the connection was closed after the pipeline');
    } finally {
      conn.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Upstreams

// A hostile upstream: a raw TCP server that reads one HTTP request (head and Content-Length
// body), then hands the socket to `behave(socket, model, conn)`, picked by the request's model.
// conn records what happened: { model, closed, closedAt }.
async function startHostileUpstream(behaviours) {
  const connections = [];
  const server = net.createServer((socket) => {
    const conn = { model: undefined, closed: false, closedAt: 0, socket };
    connections.push(conn);
    socket.on('error', () => {});
    socket.on('close', () => {
      conn.closed = true;
      conn.closedAt = Date.now();
    });
    let buffered = Buffer.alloc(0);
    const onData = (data) => {
      buffered = Buffer.concat([buffered, data]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      const headText = buffered.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(headText)?.[1] ?? 0);
      if (buffered.length < end + 4 + length) return;
      socket.off('data', onData);
      const body = buffered.subarray(end + 4, end + 4 + length).toString('utf8');
      let model = '';
      try {
        model = JSON.parse(body).model ?? '';
      } catch {
        // not JSON
      }
      conn.model = model;
      const behave = behaviours[model];
      if (!behave) {
        socket.end('HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      behave(socket, conn);
    };
    socket.on('data', onData);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    connections,
    find: (model) => connections.filter((c) => c.model === model),
    close() {
      for (const c of connections) c.socket.destroy();
      server.close();
    },
  };
}

const SSE_HEAD =
  'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';

function sseChunk(text) {
  const payload = Buffer.from(text);
  return Buffer.concat([
    Buffer.from(`${payload.length.toString(16)}\r\n`),
    payload,
    Buffer.from('\r\n'),
  ]);
}

function deltaEvent(content, model = 'hostile') {
  const chunk = {
    id: 'chatcmpl-hostile',
    object: 'chat.completion.chunk',
    created: 0,
    model,
    choices: [{ index: 0, delta: { content }, finish_reason: null }],
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

describe('bad answers from upstreams', { timeout: 90_000 }, () => {
  let mock;
  let hostile;
  let gw;
  const HUGE_LINE_BYTES = 24 * 1024 * 1024;

  before(async () => {
    hostile = await startHostileUpstream({
      // Not HTTP at all.
      'hostile-garbage': (socket) => socket.end('SSH-2.0-OpenSSH_9.2\r\nlol\r\n\r\n'),
      // Bytes without a line end, forever-ish: the status line never ends.
      'hostile-garbage-long': (socket) => socket.end(Buffer.alloc(1 << 20, 0x41)),
      // A chunked JSON answer that stops inside a chunk.
      'hostile-truncated': (socket) => {
        socket.write(
          'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n',
        );
        socket.end('40\r\n{"id":"chatcmpl-1","object":"chat.comp');
      },
      // A chunked answer with an invalid chunk size after a first good chunk.
      'hostile-bad-chunk': (socket) => {
        socket.write(
          'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n',
        );
        socket.write('5\r\n{"id"\r\n');
        setTimeout(() => socket.end('zz\r\n:"x"}\r\n0\r\n\r\n'), 50);
      },
      // Two events of a stream, then a TCP reset.
      'hostile-reset': (socket) => {
        socket.write(SSE_HEAD);
        socket.write(sseChunk(deltaEvent('one ')));
        socket.write(sseChunk(deltaEvent('two ')));
        setTimeout(() => socket.resetAndDestroy(), 100);
      },
      // A stream that never ends: an event every 20 ms.
      'hostile-endless': (socket, conn) => endless(socket, conn),
      'hostile-endless-total': (socket, conn) => endless(socket, conn),
      // One SSE data line of HUGE_LINE_BYTES, written in 64 KiB pieces, then [DONE].
      'hostile-huge-line': (socket) => writeHugeLine(socket),
    });
    mock = await startMock({ tokens: 3 });
    gw = await startGateway({
      threads: 2,
      timeouts: { first_byte_ms: 3000, idle_ms: 3000 },
      providers: [
        { id: 'good', type: 'openai', endpoints: [mock.url] },
        // The breaker is off: every case must reach the hostile upstream.
        {
          id: 'hostile',
          type: 'openai',
          endpoints: [hostile.url],
          outlier: { consecutive_failures: 0 },
        },
      ],
      routes: [
        { name: 'good', models: ['gpt-*'], provider: 'good' },
        {
          name: 'total',
          models: ['hostile-endless-total'],
          provider: 'hostile',
          retry: { attempts: 1 },
          timeouts: { total_ms: 1000 },
        },
        { name: 'hostile', models: ['hostile-*'], provider: 'hostile', retry: { attempts: 1 } },
      ],
    });
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
    hostile?.close();
  });

  afterEach(async () => {
    await assertServing(gw);
  });

  function endless(socket, conn) {
    socket.write(SSE_HEAD);
    const timer = setInterval(() => {
      if (conn.closed) return clearInterval(timer);
      socket.write(sseChunk(deltaEvent('more ')));
    }, 20);
    socket.on('close', () => clearInterval(timer));
  }

  function writeHugeLine(socket) {
    socket.write(SSE_HEAD);
    const prefix = 'data: {"choices":[{"index":0,"delta":{"content":"';
    const piece = Buffer.alloc(64 * 1024, 0x61);
    let left = HUGE_LINE_BYTES;
    socket.write(sseChunk(prefix));
    const pump = () => {
      while (left > 0) {
        left -= piece.length;
        if (!socket.write(sseChunk(piece))) return socket.once('drain', pump);
      }
      socket.write(sseChunk('"},"finish_reason":null}]}\n\n'));
      socket.write(sseChunk('data: [DONE]\n\n'));
      socket.end('0\r\n\r\n');
    };
    pump();
  }

  test('garbage instead of HTTP is 502 (OpenAI shape on chat, Anthropic on messages)', async () => {
    for (const model of ['hostile-garbage', 'hostile-garbage-long']) {
      const chat = await postJson(`${gw.url}/v1/chat/completions`, { model, ...CHAT });
      assertOpenAiError(chat, 502);
      const streamed = await postJson(`${gw.url}/v1/chat/completions`, {
        model,
        stream: true,
        ...CHAT,
      });
      assertOpenAiError(streamed, 502);
      const messages = await postJson(`${gw.url}/v1/messages`, { model, ...MESSAGES });
      assertAnthropicError(messages, 502);
    }
  });

  test('a chunked upstream body cut inside a chunk: the client sees the cut, not a whole answer', async () => {
    for (const model of ['hostile-truncated', 'hostile-bad-chunk']) {
      const conn = await RawConnection.open(gw.port);
      try {
        conn.write(rawPost('/v1/chat/completions', { model, ...CHAT }, { 'x-request-id': model }));
        // Either a 502 before any byte was relayed, or a 200 whose chunked body never ends.
        let res;
        let cut = false;
        try {
          res = await conn.readResponse(5000);
        } catch (err) {
          cut = /closed inside/.test(err.message);
          if (!cut) throw err;
        }
        if (!cut) {
          assert.ok(res, `${model}: closed without an answer`);
          assertOpenAiError(res, 502);
        }
        await waitClosed(conn);
      } finally {
        conn.close();
      }
      const line = await gw.waitForLog((l) => l.request_id === model);
      assert.ok(line.error, `${model}: the access log does not tell: ${JSON.stringify(line)}`);
    }
  });

  test("a translated answer (/v1/messages) cut by the upstream is a 502 in Anthropic's shape", async () => {
    // The translated answer is written only once whole, so the break can still be told.
    for (const model of ['hostile-truncated', 'hostile-bad-chunk']) {
      const result = await postJson(`${gw.url}/v1/messages`, { model, ...MESSAGES });
      assertAnthropicError(result, 502);
      assert.match(result.json.error.message, /upstream body/);
    }
    const whole = await postJson(`${gw.url}/v1/messages`, { model: 'gpt-whole', ...MESSAGES });
    assert.equal(whole.status, 200, whole.text);
    assert.equal(whole.json.content[0].text, 'tok0 tok1 tok2 ');
  });

  test('an upstream reset mid-stream cuts the client stream; other requests are unaffected', async () => {
    // A normal stream runs alongside the one that breaks.
    const normal = fetchWithTimeout(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-mock-token-delay-ms': '100' },
      body: JSON.stringify({ model: 'gpt-alongside', stream: true, ...CHAT }),
    });
    const res = await fetchWithTimeout(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'reset-chat' },
      body: JSON.stringify({ model: 'hostile-reset', stream: true, ...CHAT }),
    });
    assert.equal(res.status, 200);
    const { text, error } = await readAll(res);
    assert.match(text, /one /);
    assert.match(text, /two /);
    assert.doesNotMatch(text, /\[DONE\]/);
    assert.ok(error, 'the cut stream ended as if complete');
    const line = await gw.waitForLog((l) => l.request_id === 'reset-chat');
    assert.match(line.error ?? '', /upstream/);

    const normalRes = await normal;
    const events = [];
    for await (const event of readSse(normalRes)) events.push(event.data);
    assert.equal(events.at(-1), '[DONE]');
  });

  test('an upstream reset mid-stream on /v1/messages (translated) ends the stream visibly', async () => {
    const res = await fetchWithTimeout(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'hostile-reset', stream: true, ...MESSAGES }),
    });
    assert.equal(res.status, 200);
    const { text, error } = await readAll(res);
    assert.match(text, /one /);
    // Either an `event: error` or a cut connection; never a clean message_stop.
    const errorEvent = /event: error/.test(text);
    assert.ok(errorEvent || error, `the stream looked complete: ${text}`);
    assert.doesNotMatch(text, /message_stop/);
  });

  test('an endless upstream stream: the client leaves, the gateway closes the upstream', async () => {
    const before = hostile.find('hostile-endless').length;
    const conn = await RawConnection.open(gw.port);
    conn.write(
      rawPost('/v1/chat/completions', { model: 'hostile-endless', stream: true, ...CHAT }),
    );
    await waitFor(() => conn.buffer.includes('more '), { what: 'the first events' });
    await sleep(200);
    conn.close();
    const leftAt = Date.now();
    const [upstream] = hostile.find('hostile-endless').slice(before);
    assert.ok(upstream, 'the hostile upstream got no request');
    await waitFor(() => upstream.closed, {
      timeoutMs: 3000,
      what: 'the upstream connection to close',
    });
    assert.ok(
      upstream.closedAt - leftAt < 2000,
      `upstream closed ${upstream.closedAt - leftAt} ms later`,
    );
  });

  test("an endless upstream stream is ended by the route's timeouts.total_ms", async () => {
    const start = Date.now();
    const res = await fetchWithTimeout(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'endless-total' },
      body: JSON.stringify({ model: 'hostile-endless-total', stream: true, ...CHAT }),
    });
    assert.equal(res.status, 200);
    const { text, error } = await readAll(res);
    const elapsed = Date.now() - start;
    assert.match(text, /more /);
    assert.ok(error, 'the stream cut by total_ms ended as if complete');
    assert.ok(elapsed >= 900 && elapsed < 3000, `ended after ${elapsed} ms`);
    const [upstream] = hostile.find('hostile-endless-total');
    await waitFor(() => upstream.closed, {
      timeoutMs: 2000,
      what: 'the upstream connection to close',
    });
    const line = await gw.waitForLog((l) => l.request_id === 'endless-total');
    assert.match(line.error ?? '', /total/);
  });

  test('a huge SSE line relayed as is (chat): the whole line arrives, gateway memory stays bounded', async () => {
    const rssBefore = rssKiB(gw.pid);
    const res = await fetchWithTimeout(
      `${gw.url}/v1/chat/completions`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'hostile-huge-line', stream: true, ...CHAT }),
      },
      30_000,
    );
    assert.equal(res.status, 200);
    let bytes = 0;
    let tail = '';
    let maxRss = rssBefore;
    for await (const chunk of res.body) {
      bytes += chunk.length;
      tail = (tail + Buffer.from(chunk).toString('latin1')).slice(-200);
      if (bytes % (1 << 20) < chunk.length) maxRss = Math.max(maxRss, rssKiB(gw.pid));
    }
    assert.ok(bytes > HUGE_LINE_BYTES, `only ${bytes} bytes arrived`);
    assert.match(tail, /data: \[DONE\]/);
    const growthMiB = (maxRss - rssBefore) / 1024;
    // Under ASan, freed memory waits in its quarantine: RSS tells nothing there.
    if (!process.env.SLUICE_SANITIZED) {
      assert.ok(
        growthMiB < HUGE_LINE_BYTES / (1 << 20) / 2,
        `RSS grew by ${growthMiB.toFixed(1)} MiB`,
      );
    }
  });

  test('a huge SSE line under translation (/v1/messages): cut with an error, memory bounded', async () => {
    const rssBefore = rssKiB(gw.pid);
    const res = await fetchWithTimeout(
      `${gw.url}/v1/messages`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'huge-translated' },
        body: JSON.stringify({ model: 'hostile-huge-line', stream: true, ...MESSAGES }),
      },
      30_000,
    );
    const { text, error } = await readAll(res);
    const rssAfter = rssKiB(gw.pid);
    if (res.status === 200) {
      assert.ok(error || /event: error/.test(text), 'the stream looked complete');
      assert.doesNotMatch(text, /message_stop/);
    } else {
      assert.ok(isAnthropicError(JSON.parse(text)), text);
    }
    const growthMiB = (rssAfter - rssBefore) / 1024;
    if (!process.env.SLUICE_SANITIZED) {
      assert.ok(growthMiB < 16, `RSS grew by ${growthMiB.toFixed(1)} MiB`);
    }
    const line = await gw.waitForLog((l) => l.request_id === 'huge-translated');
    assert.ok(line.error, JSON.stringify(line));
  });
});
