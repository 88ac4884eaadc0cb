// The mock upstream (`sluice mock`) that the other tests and the benchmarks rely on: its
// deterministic answers, its x-mock-* knobs and its /mock/* test-support endpoints.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import {
  chunkContent,
  fetchWithTimeout,
  isOpenAiError,
  mockText,
  postJson,
  readSse,
  startMock,
  waitFor,
} from './lib/harness.js';

const CHAT = { model: 'mock-model', messages: [{ role: 'user', content: 'hi' }] };

describe('mock upstream', { timeout: 60_000 }, () => {
  let mock;

  before(async () => {
    mock = await startMock({ tokens: 6 });
  });

  test('answers chat completions with "tok0 tok1 ..." of --tokens tokens', async () => {
    const { status, json } = await postJson(`${mock.url}/v1/chat/completions`, CHAT);
    assert.equal(status, 200);
    assert.equal(json.object, 'chat.completion');
    assert.equal(json.model, 'mock-model');
    assert.equal(json.choices[0].message.content, mockText(6));
    assert.equal(json.choices[0].finish_reason, 'stop');
    assert.equal(json.usage.completion_tokens, 6);
  });

  test('max_tokens caps the answer with finish_reason "length"', async () => {
    const { json } = await postJson(`${mock.url}/v1/chat/completions`, { ...CHAT, max_tokens: 2 });
    assert.equal(json.choices[0].message.content, mockText(2));
    assert.equal(json.choices[0].finish_reason, 'length');
  });

  test('streams chat chunks in order, then [DONE]', async () => {
    const res = await fetchWithTimeout(`${mock.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...CHAT, stream: true, stream_options: { include_usage: true } }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const events = [];
    for await (const e of readSse(res)) events.push(e.data);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((d) => JSON.parse(d));
    assert.equal(events.slice(0, -1).map(chunkContent).join(''), mockText(6));
    assert.equal(chunks.at(-1).usage.completion_tokens, 6, 'include_usage adds a usage chunk');
  });

  test('x-mock-tokens and x-mock-token-delay-ms override the flags', async () => {
    const start = Date.now();
    const res = await fetchWithTimeout(`${mock.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-mock-tokens': '5',
        'x-mock-token-delay-ms': '60',
      },
      body: JSON.stringify({ ...CHAT, stream: true }),
    });
    const events = [];
    for await (const e of readSse(res, start)) events.push(e);
    assert.equal(
      events
        .slice(0, -1)
        .map((e) => chunkContent(e.data))
        .join(''),
      mockText(5),
    );
    assert.ok(events.at(-1).at >= 280, `5 tokens 60 ms apart took ${events.at(-1).at} ms`);
  });

  test('x-mock-status forces an error status with an OpenAI error body', async () => {
    const { status, json, text } = await postJson(`${mock.url}/v1/chat/completions`, CHAT, {
      headers: { 'x-mock-status': '503' },
    });
    assert.equal(status, 503);
    assert.ok(isOpenAiError(json), text);
  });

  test('x-mock-latency-ms delays the response headers', async () => {
    const start = Date.now();
    const { status } = await postJson(`${mock.url}/v1/chat/completions`, CHAT, {
      headers: { 'x-mock-latency-ms': '300' },
    });
    assert.equal(status, 200);
    assert.ok(Date.now() - start >= 290);
  });

  test('invalid JSON is a 400', async () => {
    const { status, json } = await postJson(`${mock.url}/v1/chat/completions`, '{"model":');
    assert.equal(status, 400);
    assert.ok(isOpenAiError(json));
  });

  test('embeddings are deterministic per input', async () => {
    const a = await postJson(`${mock.url}/v1/embeddings`, {
      model: 'mock-embedding',
      input: ['x', 'y'],
    });
    const b = await postJson(`${mock.url}/v1/embeddings`, { model: 'mock-embedding', input: 'x' });
    assert.equal(a.status, 200);
    assert.equal(a.json.data.length, 2);
    assert.deepEqual(a.json.data[0].embedding, b.json.data[0].embedding);
    assert.notDeepEqual(a.json.data[0].embedding, a.json.data[1].embedding);
  });

  test('GET /v1/models lists the mock models', async () => {
    const res = await fetchWithTimeout(`${mock.url}/v1/models`);
    const json = await res.json();
    assert.equal(json.object, 'list');
    assert.ok(json.data.some((m) => m.id === 'mock-model'));
  });

  test('answers Anthropic messages', async () => {
    const { status, json } = await postJson(`${mock.url}/v1/messages`, {
      model: 'claude-mock',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(status, 200);
    assert.equal(json.type, 'message');
    assert.equal(json.content[0].text, mockText(6));
  });

  test('/mock/last shows the last request as received; /mock/reset forgets it', async () => {
    const body = '{"model" : "mock-model",  "messages":[{"role":"user","content":"last"}]}';
    await postJson(`${mock.url}/v1/chat/completions?x=1`, body, {
      headers: { 'X-Custom-Thing': 'Value' },
    });
    const last = await mock.last();
    assert.equal(last.method, 'POST');
    assert.equal(last.target, '/v1/chat/completions?x=1');
    assert.equal(last.headers['x-custom-thing'], 'Value');
    assert.equal(last.body, body);

    await mock.reset();
    const res = await fetchWithTimeout(`${mock.url}/mock/last`);
    assert.equal(res.status, 404);
    await res.arrayBuffer();
  });

  test('/mock/stats counts requests and streams; reset zeroes them', async () => {
    await mock.reset();
    let stats = await mock.stats();
    assert.deepEqual(
      [stats.requests, stats.streams_started, stats.streams_completed, stats.streams_cancelled],
      [0, 0, 0, 0],
    );
    await postJson(`${mock.url}/v1/chat/completions`, CHAT);
    const res = await fetchWithTimeout(`${mock.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...CHAT, stream: true }),
    });
    for await (const _ of readSse(res));
    stats = await mock.stats();
    assert.equal(stats.requests, 2);
    assert.equal(stats.streams_started, 1);
    assert.equal(stats.streams_completed, 1);
    assert.equal(stats.streams_cancelled, 0);
    assert.equal(stats.active_streams, 0);
  });

  test('a client that goes away mid-stream counts as a cancelled stream', async () => {
    await mock.reset();
    const controller = new AbortController();
    const res = await fetch(`${mock.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-mock-tokens': '100',
        'x-mock-token-delay-ms': '50',
      },
      body: JSON.stringify({ ...CHAT, stream: true }),
      signal: controller.signal,
    });
    let seen = 0;
    try {
      for await (const e of readSse(res)) {
        if (chunkContent(e.data) && ++seen === 2) {
          assert.equal((await mock.stats()).active_streams, 1);
          controller.abort();
        }
      }
    } catch (err) {
      if (err.name !== 'AbortError') throw err;
    }
    const stats = await waitFor(
      async () => {
        const s = await mock.stats();
        return s.streams_cancelled === 1 && s.active_streams === 0 && s;
      },
      { timeoutMs: 1500, what: 'the mock to count the cancelled stream' },
    );
    assert.equal(stats.streams_completed, 0);
  });
});
