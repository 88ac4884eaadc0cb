// Streaming: SSE events are relayed one by one as the upstream produces them, in order, and a
// client that goes away cancels the upstream request.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  chunkContent,
  fetchWithTimeout,
  mockText,
  readSse,
  simpleConfig,
  startGateway,
  startMock,
  waitFor,
} from './lib/harness.js';

function streamRequest(gw, body, headers = {}, signal) {
  return fetchWithTimeout(
    `${gw.url}/v1/chat/completions`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], stream: true, ...body }),
      signal,
    },
    30_000,
  );
}

describe('streaming', { timeout: 60_000 }, () => {
  let mock;
  let gw;

  before(async () => {
    mock = await startMock({ tokens: 40, tokenDelayMs: 50 });
    gw = await startGateway(simpleConfig([mock]));
  });

  after(async () => {
    await gw?.stop();
  });

  test('events are relayed as they arrive, in order, ending with [DONE]', async () => {
    const start = Date.now();
    const res = await streamRequest(gw, { model: 'stream-model' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    assert.ok(res.headers.get('x-request-id'), 'streams carry x-request-id too');

    const events = [];
    for await (const event of readSse(res, start)) events.push(event);

    assert.ok(events.length >= 41, `${events.length} events`);
    assert.equal(events.at(-1).data, '[DONE]');
    assert.ok(
      events.slice(0, -1).every((e) => e.data !== '[DONE]'),
      '[DONE] only at the end',
    );
    const text = events
      .slice(0, -1)
      .map((e) => chunkContent(e.data))
      .join('');
    assert.equal(text, mockText(40), 'tokens arrive complete and in order');
    for (const e of events.slice(0, -1))
      assert.equal(JSON.parse(e.data).object, 'chat.completion.chunk');

    // 40 tokens 50 ms apart take about 2 s to produce; a relay that buffered would deliver the
    // first one only at the end.
    const firstToken = events.find((e) => chunkContent(e.data).length > 0);
    assert.ok(firstToken.at < 500, `first token after ${firstToken.at} ms`);
    assert.ok(events.at(-1).at >= 1900, `stream finished after ${events.at(-1).at} ms`);
    assert.ok(events.at(-1).at - firstToken.at >= 1500, 'tokens were spread over the stream');
  });

  test('x-mock-* request headers reach the upstream (token count and delay)', async () => {
    const start = Date.now();
    const res = await streamRequest(
      gw,
      { model: 'stream-headers' },
      { 'x-mock-tokens': '7', 'x-mock-token-delay-ms': '0' },
    );
    assert.equal(res.status, 200);
    const events = [];
    for await (const event of readSse(res, start)) events.push(event);
    assert.equal(events.at(-1).data, '[DONE]');
    const text = events
      .slice(0, -1)
      .map((e) => chunkContent(e.data))
      .join('');
    assert.equal(text, mockText(7));
    assert.ok(events.at(-1).at < 1500, `no token delay, yet took ${events.at(-1).at} ms`);
  });

  test('concurrent streams are relayed independently', async () => {
    const run = async (i) => {
      const res = await streamRequest(
        gw,
        { model: `concurrent-${i}` },
        { 'x-mock-tokens': String(10 + i), 'x-mock-token-delay-ms': '20' },
      );
      assert.equal(res.status, 200);
      const events = [];
      for await (const event of readSse(res)) events.push(event);
      assert.equal(events.at(-1).data, '[DONE]');
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
      assert.ok(
        chunks.every((c) => c.model === `concurrent-${i}`),
        'no events from other streams',
      );
      assert.equal(
        chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join(''),
        mockText(10 + i),
      );
    };
    await Promise.all([0, 1, 2, 3, 4, 5].map(run));
  });

  test('a client that disconnects mid-stream cancels the upstream request', async () => {
    await mock.reset();
    const before = await mock.stats();
    const controller = new AbortController();
    const res = await streamRequest(
      gw,
      { model: 'stream-cancel' },
      { 'x-mock-tokens': '200', 'x-mock-token-delay-ms': '50' },
      controller.signal,
    );
    assert.equal(res.status, 200);
    let seen = 0;
    let midStream;
    try {
      for await (const event of readSse(res)) {
        if (chunkContent(event.data)) seen++;
        if (seen === 3) {
          midStream = await mock.stats();
          controller.abort();
          break;
        }
      }
    } catch (err) {
      if (err.name !== 'AbortError') throw err;
    }
    assert.equal(seen, 3);
    assert.equal(midStream.active_streams, 1, 'the upstream stream was running before the abort');

    const abortedAt = Date.now();
    const stats = await waitFor(
      async () => {
        const s = await mock.stats();
        return s.streams_cancelled > before.streams_cancelled && s.active_streams === 0 && s;
      },
      { timeoutMs: 1500, what: 'the mock to see its stream cancelled' },
    );
    assert.ok(Date.now() - abortedAt < 1500);
    assert.equal(
      stats.streams_completed,
      before.streams_completed,
      'the stream did not run to its end',
    );

    // The gateway is unharmed and serves the next request.
    const health = await fetchWithTimeout(`${gw.url}/health`);
    assert.equal(health.status, 200);
  });

  test('the access log of a stream shows time to first byte well below the duration', async () => {
    const id = `stream-log-${Date.now()}`;
    const res = await streamRequest(
      gw,
      { model: 'stream-log' },
      { 'x-request-id': id, 'x-mock-tokens': '10', 'x-mock-token-delay-ms': '50' },
    );
    for await (const _ of readSse(res));
    const line = await gw.waitForLog((l) => l.request_id === id);
    assert.equal(line.status, 200);
    assert.equal(line.model, 'stream-log');
    assert.ok(line.duration_ms >= 450, JSON.stringify(line));
    assert.ok(line.ttfb_ms < line.duration_ms - 300, JSON.stringify(line));
    assert.ok(line.bytes_out > 0);
  });

  test('a stream that pauses longer than idle_ms is cut at idle_ms, and the next one runs', async () => {
    const idle = await startGateway(simpleConfig([mock], { timeouts: { idle_ms: 300 } }));
    try {
      const id = `stream-idle-${Date.now()}`;
      const start = Date.now();
      const res = await streamRequest(
        idle,
        { model: 'stream-idle' },
        { 'x-request-id': id, 'x-mock-tokens': '5', 'x-mock-token-delay-ms': '1000' },
      );
      assert.equal(res.status, 200);
      let done = false;
      await assert.rejects(async () => {
        for await (const event of readSse(res)) done ||= event.data === '[DONE]';
      }, 'the cut stream ends with an error, not as if complete');
      const elapsed = Date.now() - start;
      assert.ok(!done);
      // The first token comes after 1 s; the watch cuts the first pause at 300 ms.
      assert.ok(elapsed >= 280 && elapsed < 900, `cut after ${elapsed} ms`);
      const line = await idle.waitForLog((l) => l.request_id === id);
      assert.match(line.error ?? '', /timeout/);

      // Events every 100 ms keep a stream alive well past idle_ms.
      const steady = await streamRequest(
        idle,
        { model: 'stream-steady' },
        { 'x-mock-tokens': '8', 'x-mock-token-delay-ms': '100' },
      );
      const events = [];
      for await (const event of readSse(steady)) events.push(event.data);
      assert.equal(events.at(-1), '[DONE]');
      assert.equal(events.slice(0, -1).map(chunkContent).join(''), mockText(8));
    } finally {
      await idle.stop();
    }
  });
});
