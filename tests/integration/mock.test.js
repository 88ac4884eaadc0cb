// The mock upstream (`sluice mock`) that the other tests and the benchmarks rely on: its
// deterministic answers, its x-mock-* knobs and its /mock/* test-support endpoints.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import {
  chunkContent,
  fetchWithTimeout,
  httpsRequest,
  isOpenAiError,
  makeCertificates,
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

  test('answers Anthropic messages; anthropic-version is required', async () => {
    const request = {
      model: 'claude-mock',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    };
    const { status, json } = await postJson(`${mock.url}/v1/messages`, request, {
      headers: { 'anthropic-version': '2023-06-01' },
    });
    assert.equal(status, 200);
    assert.equal(json.type, 'message');
    assert.equal(json.content[0].text, mockText(6));
    assert.equal(json.usage.cache_read_input_tokens, 0);

    const missing = await postJson(`${mock.url}/v1/messages`, request);
    assert.equal(missing.status, 400);
    assert.equal(missing.json.type, 'error');
    assert.equal(missing.json.error.type, 'invalid_request_error');
    assert.match(missing.json.error.message, /anthropic-version/);
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

  test('the paths of Azure, GitHub Models and SGLang reach the same handlers', async () => {
    const azure = `${mock.url}/openai/deployments/my-dep/chat/completions`;
    const withVersion = await postJson(`${azure}?api-version=2024-10-21`, {
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(withVersion.status, 200, withVersion.text);
    assert.equal(withVersion.json.choices[0].message.content, mockText(6));
    assert.equal(withVersion.json.model, 'my-dep', 'the deployment names the model');
    const noVersion = await postJson(azure, CHAT);
    assert.equal(noVersion.status, 400);
    assert.ok(isOpenAiError(noVersion.json));
    const azureEmbeddings = await postJson(
      `${mock.url}/openai/deployments/emb/embeddings?api-version=2024-10-21`,
      { input: 'x' },
    );
    assert.equal(azureEmbeddings.status, 200);

    const github = await postJson(`${mock.url}/inference/chat/completions`, CHAT);
    assert.equal(github.json.choices[0].message.content, mockText(6));
    const githubEmbeddings = await postJson(`${mock.url}/inference/embeddings`, { input: 'x' });
    assert.equal(githubEmbeddings.json.data.length, 1);

    const generate = await postJson(`${mock.url}/generate`, {
      text: 'hello',
      sampling_params: { max_new_tokens: 2 },
    });
    assert.equal(generate.status, 200);
    assert.equal(generate.json.text, mockText(2));
    assert.equal(generate.json.meta_info.finish_reason.type, 'length');
    assert.equal(generate.json.meta_info.completion_tokens, 2);
  });

  test('GET /health: 200, or the status POST /mock/health sets; reset restores 200', async () => {
    const health = async () => {
      const res = await fetchWithTimeout(`${mock.url}/health`);
      return { status: res.status, json: await res.json() };
    };
    const setHealth = (body) => postJson(`${mock.url}/mock/health`, body);
    await mock.reset();
    assert.deepEqual(await health(), { status: 200, json: { status: 'ok' } });

    const set = await setHealth({ status: 503 });
    assert.equal(set.status, 200, set.text);
    assert.deepEqual(set.json, { status: 503 });
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(await health(), { status: 503, json: { status: 'unhealthy' } });
    }
    assert.equal((await setHealth({ status: 200 })).status, 200);
    assert.deepEqual(await health(), { status: 200, json: { status: 'ok' } });

    await setHealth({ status: 500 });
    assert.equal((await health()).status, 500);
    await mock.reset();
    assert.equal((await health()).status, 200, '/mock/reset makes /health answer 200 again');

    for (const bad of [
      { status: 99 },
      { status: 600 },
      { status: '503' },
      {},
      '[503]',
      '{"status":',
    ]) {
      const refused = await setHealth(bad);
      assert.equal(refused.status, 400, `${JSON.stringify(bad)}: ${refused.text}`);
      assert.ok(isOpenAiError(refused.json));
    }
    assert.equal((await health()).status, 200, 'a refused setting changes nothing');
    const wrongMethod = await postJson(`${mock.url}/health`, {});
    assert.equal(wrongMethod.status, 405);

    const stats = await mock.stats();
    assert.equal(stats.requests, 0, 'health probes are not counted as API requests');
  });

  const WEATHER_TOOL_ANTHROPIC = {
    name: 'get_weather',
    description: 'Weather of a city',
    input_schema: { type: 'object', properties: { city: { type: 'string' } } },
  };
  const WEATHER_TOOL_OPENAI = {
    type: 'function',
    function: { name: 'get_weather', parameters: WEATHER_TOOL_ANTHROPIC.input_schema },
  };

  test('Anthropic tool use, streamed as input_json_delta fragments', async () => {
    const request = {
      model: 'claude-mock',
      max_tokens: 100,
      tools: [WEATHER_TOOL_ANTHROPIC],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'What is the Weather in Paris?' }] },
      ],
    };
    const headers = { 'anthropic-version': '2023-06-01', 'x-mock-cached-tokens': '11' };
    const whole = await postJson(`${mock.url}/v1/messages`, request, { headers });
    assert.equal(whole.status, 200, whole.text);
    assert.deepEqual(whole.json.content, [
      { type: 'tool_use', id: 'toolu_mock_1', name: 'get_weather', input: { city: 'Paris' } },
    ]);
    assert.equal(whole.json.stop_reason, 'tool_use');
    assert.equal(whole.json.usage.cache_read_input_tokens, 11);

    const res = await fetchWithTimeout(`${mock.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ ...request, stream: true }),
    });
    const events = [];
    for await (const e of readSse(res)) events.push({ event: e.event, data: JSON.parse(e.data) });
    assert.deepEqual(
      events.map((e) => e.event),
      [
        'message_start',
        'content_block_start',
        'ping',
        'content_block_delta',
        'content_block_delta',
        'content_block_delta',
        'content_block_stop',
        'message_delta',
        'message_stop',
      ],
    );
    for (const e of events) assert.equal(e.data.type, e.event);
    assert.equal(events[0].data.message.usage.cache_read_input_tokens, 11);
    assert.deepEqual(events[1].data.content_block, {
      type: 'tool_use',
      id: 'toolu_mock_1',
      name: 'get_weather',
      input: {},
    });
    const json = events
      .filter((e) => e.event === 'content_block_delta')
      .map((e) => {
        assert.equal(e.data.delta.type, 'input_json_delta');
        return e.data.delta.partial_json;
      })
      .join('');
    assert.deepEqual(JSON.parse(json), { city: 'Paris' });
    assert.equal(events[7].data.delta.stop_reason, 'tool_use');

    // A tool result as the last message gets text again; so does a request without the word.
    const after = await postJson(
      `${mock.url}/v1/messages`,
      {
        ...request,
        messages: [
          ...request.messages,
          { role: 'assistant', content: whole.json.content },
          {
            role: 'user',
            content: [{ type: 'tool_result', tool_use_id: 'toolu_mock_1', content: 'Sunny' }],
          },
        ],
      },
      { headers },
    );
    assert.equal(after.json.content[0].text, mockText(6));
    const forced = await postJson(
      `${mock.url}/v1/messages`,
      { ...request, messages: [{ role: 'user', content: 'hi' }] },
      { headers: { ...headers, 'x-mock-tool': 'lookup' } },
    );
    assert.equal(forced.json.content[0].name, 'lookup');
  });

  test('OpenAI tool calls, streamed as argument chunks', async () => {
    const request = {
      ...CHAT,
      tools: [WEATHER_TOOL_OPENAI],
      messages: [{ role: 'user', content: 'weather in Paris?' }],
    };
    const whole = await postJson(`${mock.url}/v1/chat/completions`, request, {
      headers: { 'x-mock-cached-tokens': '3' },
    });
    const message = whole.json.choices[0].message;
    assert.equal(message.tool_calls[0].id, 'call_mock_1');
    assert.equal(message.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(message.tool_calls[0].function.arguments), { city: 'Paris' });
    assert.equal(whole.json.choices[0].finish_reason, 'tool_calls');
    assert.equal(whole.json.usage.prompt_tokens_details.cached_tokens, 3);

    const res = await fetchWithTimeout(`${mock.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...request, stream: true, stream_options: { include_usage: true } }),
    });
    const chunks = [];
    for await (const e of readSse(res)) if (e.data !== '[DONE]') chunks.push(JSON.parse(e.data));
    const calls = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    assert.equal(calls.length, 4, 'the call (id, name) then 3 argument fragments');
    assert.equal(calls[0].id, 'call_mock_1');
    assert.equal(calls[0].function.name, 'get_weather');
    const args = calls.map((c) => c.function.arguments ?? '').join('');
    assert.deepEqual(JSON.parse(args), { city: 'Paris' });
    assert.equal(
      chunks.find((c) => c.choices[0]?.finish_reason).choices[0].finish_reason,
      'tool_calls',
    );
    assert.equal(chunks.at(-1).usage.completion_tokens, 3);
  });

  test('tool-less requests and malformed tools', async () => {
    const plain = await postJson(`${mock.url}/v1/chat/completions`, {
      ...CHAT,
      messages: [{ role: 'user', content: 'weather?' }],
    });
    assert.equal(plain.json.choices[0].message.content, mockText(6), 'no tools: text');
    const bad = await postJson(`${mock.url}/v1/chat/completions`, { ...CHAT, tools: 'x' });
    assert.equal(bad.status, 400);
    const badMessages = await postJson(`${mock.url}/v1/chat/completions`, {
      model: 'm',
      messages: [{ role: 'user', content: [{ type: 'text', text: 1 }, 2, null] }],
    });
    assert.equal(badMessages.status, 200, 'odd content parts are validated, not fatal');
  });
});

describe('mock keys and TLS', { timeout: 60_000 }, () => {
  test('--require-key and --reject-key check Bearer, x-api-key and api-key and count per key', async () => {
    const mock = await startMock({
      tokens: 2,
      requireKeys: ['good-1', 'good-2'],
      rejectKeys: ['limited'],
    });
    const url = `${mock.url}/v1/chat/completions`;
    assert.equal((await postJson(url, CHAT)).status, 401);
    const wrong = await postJson(url, CHAT, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    assert.ok(isOpenAiError(wrong.json));
    assert.equal(wrong.json.error.type, 'authentication_error');
    for (const headers of [
      { authorization: 'Bearer good-1' },
      { 'x-api-key': 'good-2' },
      { 'api-key': 'good-1' },
    ]) {
      const { status, text } = await postJson(url, CHAT, { headers });
      assert.equal(status, 200, `${JSON.stringify(headers)}: ${text}`);
    }
    const limited = await postJson(url, CHAT, { headers: { authorization: 'Bearer limited' } });
    assert.equal(limited.status, 429);
    const anthropic = await postJson(
      `${mock.url}/v1/messages`,
      { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-api-key': 'nope', 'anthropic-version': '2023-06-01' } },
    );
    assert.equal(anthropic.status, 401);
    assert.equal(anthropic.json.type, 'error');
    assert.equal(anthropic.json.error.type, 'authentication_error');

    const health = await fetchWithTimeout(`${mock.url}/health`);
    assert.equal(health.status, 200, '/health needs no key');
    await health.arrayBuffer();

    const stats = await mock.stats();
    assert.deepEqual(stats.keys, { 'good-1': 2, 'good-2': 1, limited: 1 });
    assert.equal(stats.unauthorized, 3);
    assert.equal(stats.rejected, 1);
    const output = mock.stdoutLines.join('\n') + mock.stderr;
    for (const key of ['good-1', 'good-2', 'limited']) assert.ok(!output.includes(key));
    await mock.stop();
  });

  test('--tls-cert/--tls-key serve HTTPS', async () => {
    const pki = makeCertificates({ server: ['DNS:localhost', 'IP:127.0.0.1'] });
    const mock = await startMock({ tokens: 3, tls: { ...pki.server, ca: pki.ca } });
    assert.match(mock.url, /^https:/);
    const res = await httpsRequest(`${mock.url}/v1/chat/completions`, {
      method: 'POST',
      ca: pki.ca,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(CHAT),
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, mockText(3));
    assert.equal((await mock.stats()).requests, 1);
    await assert.rejects(httpsRequest(`${mock.url}/mock/stats`), 'an unknown CA is refused');
    await mock.stop();
  });
});
