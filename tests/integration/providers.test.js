// Provider types against the mock (issue 3): each type reaches the path its dialect uses with
// the auth header it uses; model mapping; missing capabilities; token rotation and failover;
// HTTPS upstreams with certificate verification.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  chunkContent,
  fetchWithTimeout,
  isOpenAiError,
  makeCertificates,
  mockText,
  postJson,
  readSse,
  startGateway,
  startMock,
} from './lib/harness.js';

const TOKENS = 5;
const AUTH_HEADERS = ['authorization', 'x-api-key', 'api-key'];

// The tokens of the keyed mock, one per provider so that each request shows whose it is.
const KEYS = {
  openai: 'sk-openai-7f3a91',
  generic: 'sk-generic-22b8c4',
  vllm: 'sk-vllm-5d1e07',
  sglang: 'sk-sglang-9c4f63',
  github: 'ghp-github-0a7b2e',
  azure: 'azure-key-61d9f0',
  anthropic: 'sk-ant-3e8c55',
};

function chat(model, extra = {}) {
  return { model, messages: [{ role: 'user', content: 'hi' }], ...extra };
}

// Streams a chat request through the gateway; returns { status, chunks (parsed), text, done }.
async function streamChat(url, body, headers = {}) {
  const res = await fetchWithTimeout(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (res.status !== 200) return { status: res.status, text: await res.text(), chunks: [] };
  const chunks = [];
  let done = false;
  for await (const e of readSse(res)) {
    if (e.data === '[DONE]') done = true;
    else chunks.push(JSON.parse(e.data));
  }
  const text = chunks.map((c) => chunkContent(JSON.stringify(c))).join('');
  return { status: res.status, chunks, text, done };
}

describe('provider types', { timeout: 60_000 }, () => {
  let keyed; // requires one key per provider
  let open; // no keys at all
  let gw;

  before(async () => {
    [keyed, open] = await Promise.all([
      startMock({ tokens: TOKENS, requireKeys: Object.values(KEYS) }),
      startMock({ tokens: TOKENS }),
    ]);
    const provider = (id, type, extra) => ({ id, type, ...extra });
    gw = await startGateway({
      threads: 2,
      providers: [
        provider('p-openai', 'openai', { endpoints: [keyed.url], api_tokens: [KEYS.openai] }),
        provider('p-generic', 'generic', {
          endpoints: [`${keyed.url}/v1`],
          api_tokens: [KEYS.generic],
        }),
        provider('p-vllm-base', 'vllm', {
          custom_url: `${keyed.url}/v1`,
          api_tokens: [KEYS.vllm],
        }),
        provider('p-vllm-full', 'vllm', {
          custom_url: `${keyed.url}/v1/chat/completions`,
          api_tokens: [KEYS.vllm],
        }),
        provider('p-vllm-legacy', 'vllm', { server_host: `127.0.0.1:${open.port}` }),
        provider('p-sglang', 'sglang', {
          custom_url: `${keyed.url}/v1`,
          api_tokens: [KEYS.sglang],
        }),
        provider('p-github', 'github', {
          endpoints: [`${keyed.url}/inference`],
          api_tokens: [KEYS.github],
        }),
        provider('p-azure', 'azure', {
          endpoints: [keyed.url],
          api_tokens: [KEYS.azure],
          deployment: 'gpt4o-prod',
          api_version: '2024-10-21',
        }),
        provider('p-ollama', 'ollama', { endpoints: [open.url] }),
        provider('p-anthropic', 'anthropic', {
          endpoints: [keyed.url],
          api_tokens: [KEYS.anthropic],
        }),
      ],
      routes: [
        { models: ['openai-model'], provider: 'p-openai' },
        { models: ['generic-model'], provider: 'p-generic' },
        { models: ['vllm-base'], provider: 'p-vllm-base' },
        { models: ['vllm-full'], provider: 'p-vllm-full' },
        { models: ['vllm-legacy'], provider: 'p-vllm-legacy' },
        { models: ['sglang-model'], provider: 'p-sglang' },
        { models: ['openai/*'], provider: 'p-github' },
        { models: ['azure-model'], provider: 'p-azure' },
        { models: ['llama3'], provider: 'p-ollama' },
        { models: ['claude-*'], provider: 'p-anthropic' },
      ],
    });
  });

  after(async () => {
    // No provider token may reach the gateway's output, whatever happened above.
    const output = gw.stdoutLines.join('\n') + gw.stderr;
    for (const key of Object.values(KEYS)) assert.ok(!output.includes(key), 'a token was logged');
  });

  // Sends a chat request through the gateway and returns what the mock saw.
  async function chatThrough(mock, model, { stream = false } = {}) {
    const url = `${gw.url}/v1/chat/completions`;
    // The client's own credentials must never be forwarded upstream.
    const headers = { authorization: 'Bearer client-credential', 'x-api-key': 'client-credential' };
    if (stream) {
      const { status, text, chunks, done } = await streamChat(url, chat(model), headers);
      assert.equal(status, 200, text);
      assert.equal(text, mockText(TOKENS));
      assert.ok(done, 'the stream ends with [DONE]');
      for (const c of chunks) assert.equal(c.model, model);
    } else {
      const { status, json, text } = await postJson(url, chat(model), { headers });
      assert.equal(status, 200, text);
      assert.equal(json.choices[0].message.content, mockText(TOKENS));
      assert.equal(json.model, model);
    }
    const last = await mock.last();
    assert.equal(JSON.parse(last.body).model, model, 'no mapping: the name is kept');
    for (const name of AUTH_HEADERS) {
      assert.ok(!last.headers[name]?.includes('client-credential'), `client ${name} forwarded`);
    }
    return last;
  }

  function onlyAuthHeader(last, name, value) {
    assert.equal(last.headers[name], value, `${name} header`);
    for (const other of AUTH_HEADERS) {
      if (other !== name) assert.equal(last.headers[other], undefined, `unexpected ${other}`);
    }
  }

  test('openai: Bearer token, /v1/chat/completions', async () => {
    const last = await chatThrough(keyed, 'openai-model');
    assert.equal(last.target, '/v1/chat/completions');
    onlyAuthHeader(last, 'authorization', `Bearer ${KEYS.openai}`);
    const streamed = await chatThrough(keyed, 'openai-model', { stream: true });
    assert.equal(streamed.target, '/v1/chat/completions');
  });

  test('generic: base URL with /v1', async () => {
    const last = await chatThrough(keyed, 'generic-model');
    assert.equal(last.target, '/v1/chat/completions');
    onlyAuthHeader(last, 'authorization', `Bearer ${KEYS.generic}`);
  });

  test('vllm: custom_url as a base, and as a full API path', async () => {
    let last = await chatThrough(keyed, 'vllm-base');
    assert.equal(last.target, '/v1/chat/completions');
    onlyAuthHeader(last, 'authorization', `Bearer ${KEYS.vllm}`);

    last = await chatThrough(keyed, 'vllm-full');
    assert.equal(last.target, '/v1/chat/completions', 'the full path is used as is');
    onlyAuthHeader(last, 'authorization', `Bearer ${KEYS.vllm}`);

    // Other capabilities of a full-path provider use the same base.
    const embeddings = await postJson(`${gw.url}/v1/embeddings`, {
      model: 'vllm-full',
      input: 'x',
    });
    assert.equal(embeddings.status, 200, embeddings.text);
    assert.equal((await keyed.last()).target, '/v1/embeddings');
  });

  test('vllm: legacy server_host, no token', async () => {
    const last = await chatThrough(open, 'vllm-legacy', { stream: true });
    assert.equal(last.target, '/v1/chat/completions');
    for (const name of AUTH_HEADERS) assert.equal(last.headers[name], undefined);
  });

  test('sglang: OpenAI API under /v1, native /generate passed through', async () => {
    const last = await chatThrough(keyed, 'sglang-model');
    assert.equal(last.target, '/v1/chat/completions');
    onlyAuthHeader(last, 'authorization', `Bearer ${KEYS.sglang}`);

    const body = { model: 'sglang-model', text: 'hello', sampling_params: { max_new_tokens: 3 } };
    const generate = await postJson(`${gw.url}/generate`, body);
    assert.equal(generate.status, 200, generate.text);
    assert.equal(generate.json.text, mockText(3));
    assert.equal(generate.json.meta_info.completion_tokens, 3);
    const seen = await keyed.last();
    assert.equal(seen.target, '/generate', 'SGLang serves /generate at the root, not under /v1');
    assert.equal(seen.headers.authorization, `Bearer ${KEYS.sglang}`);
    assert.deepEqual(JSON.parse(seen.body), body);

    // SGLang's own clients send no model: /generate goes to the provider that serves it.
    const bare = { text: 'hello', sampling_params: { max_new_tokens: 2 } };
    const noModel = await postJson(`${gw.url}/generate`, bare);
    assert.equal(noModel.status, 200, noModel.text);
    assert.equal(noModel.json.text, mockText(2));
    assert.equal((await keyed.last()).target, '/generate');
    assert.deepEqual(JSON.parse((await keyed.last()).body), bare);
  });

  test('github: /inference/chat/completions with a Bearer token, vendor/model names', async () => {
    const last = await chatThrough(keyed, 'openai/gpt-4o');
    assert.equal(last.target, '/inference/chat/completions');
    onlyAuthHeader(last, 'authorization', `Bearer ${KEYS.github}`);
  });

  test('azure: api-key header, deployment in the path, api-version query', async () => {
    const last = await chatThrough(keyed, 'azure-model', { stream: true });
    assert.equal(
      last.target,
      '/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21',
    );
    onlyAuthHeader(last, 'api-key', KEYS.azure);
    const embeddings = await postJson(`${gw.url}/v1/embeddings`, {
      model: 'azure-model',
      input: ['a', 'b'],
    });
    assert.equal(embeddings.status, 200, embeddings.text);
    assert.equal(
      (await keyed.last()).target,
      '/openai/deployments/gpt4o-prod/embeddings?api-version=2024-10-21',
    );
  });

  test('ollama: OpenAI API under /v1, no auth header at all', async () => {
    const last = await chatThrough(open, 'llama3');
    assert.equal(last.target, '/v1/chat/completions');
    for (const name of AUTH_HEADERS) assert.equal(last.headers[name], undefined, name);
  });

  test('anthropic: x-api-key and anthropic-version on /v1/messages', async () => {
    const body = {
      model: 'claude-sonnet-4',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'hi' }],
    };
    const res = await postJson(`${gw.url}/v1/messages`, body, {
      headers: { 'x-api-key': 'client-credential', 'anthropic-version': '2023-06-01' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.type, 'message');
    assert.equal(res.json.content[0].text, mockText(TOKENS));
    const last = await keyed.last();
    assert.equal(last.target, '/v1/messages');
    onlyAuthHeader(last, 'x-api-key', KEYS.anthropic);
    assert.equal(last.headers['anthropic-version'], '2023-06-01');

    // A client that sends no anthropic-version still reaches the upstream with one.
    const bare = await postJson(`${gw.url}/v1/messages`, body);
    assert.equal(bare.status, 200, bare.text);
    assert.equal((await keyed.last()).headers['anthropic-version'], '2023-06-01');
  });

  test('each keyed request used its own provider token', async () => {
    const { keys, unauthorized } = await keyed.stats();
    assert.equal(unauthorized, 0, 'no request reached the keyed mock without a valid key');
    for (const [type, key] of Object.entries(KEYS))
      assert.ok(keys[key] >= 1, `${type} token unused`);
  });
});

describe('model mapping and capabilities', { timeout: 60_000 }, () => {
  let mock;
  let gw;

  before(async () => {
    mock = await startMock({ tokens: TOKENS });
    gw = await startGateway({
      threads: 2,
      providers: [
        {
          id: 'mapped',
          type: 'openai',
          endpoints: [mock.url],
          model_mapping: {
            'gpt-4o': 'exact-target',
            'gpt-4*': 'prefix-target',
            'keep-me': '',
            '*': 'star-target',
          },
        },
        { id: 'plain-openai', type: 'openai', endpoints: [mock.url] },
        {
          id: 'ranker',
          type: 'vllm',
          custom_url: `${mock.url}/v1`,
          model_mapping: { 'rerank-alias': 'bge-reranker' },
        },
      ],
      routes: [
        { models: ['gpt-4*', 'keep-me', 'other-*'], provider: 'mapped' },
        { models: ['no-rerank'], provider: 'plain-openai' },
        { models: ['rerank-alias'], provider: 'ranker' },
      ],
    });
  });

  const cases = [
    ['gpt-4o', 'exact-target', 'exact name'],
    ['gpt-4-turbo', 'prefix-target', 'prefix wildcard'],
    ['keep-me', 'keep-me', 'empty value keeps the name'],
    ['other-model', 'star-target', '"*" fallback'],
  ];
  for (const [asked, upstream, what] of cases) {
    test(`${what}: ${asked} → ${upstream}`, async () => {
      const res = await postJson(`${gw.url}/v1/chat/completions`, chat(asked));
      assert.equal(res.status, 200, res.text);
      assert.equal(JSON.parse((await mock.last()).body).model, upstream);
      assert.equal(res.json.model, asked, 'the client sees the name it asked for');

      const streamed = await streamChat(`${gw.url}/v1/chat/completions`, chat(asked), {});
      assert.equal(streamed.status, 200, streamed.text);
      assert.equal(JSON.parse((await mock.last()).body).model, upstream);
      assert.equal(streamed.text, mockText(TOKENS));
      assert.ok(streamed.chunks.length >= TOKENS);
      for (const c of streamed.chunks) assert.equal(c.model, asked, 'in every streamed chunk');
    });
  }

  test('the mapped body is otherwise unchanged', async () => {
    const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], temperature: 0.5 };
    await postJson(`${gw.url}/v1/chat/completions`, body);
    assert.deepEqual(JSON.parse((await mock.last()).body), { ...body, model: 'exact-target' });
  });

  test('/v1/rerank to a provider without rerank is a clear 400', async () => {
    await mock.reset();
    const res = await postJson(`${gw.url}/v1/rerank`, {
      model: 'no-rerank',
      query: 'q',
      documents: ['a'],
    });
    assert.equal(res.status, 400, res.text);
    assert.ok(isOpenAiError(res.json), res.text);
    assert.match(res.json.error.message, /rerank/);
    assert.match(res.json.error.message, /plain-openai|openai/);
    assert.equal((await mock.stats()).requests, 0, 'nothing was sent upstream');
  });

  test('/v1/rerank to vllm returns results', async () => {
    const res = await postJson(`${gw.url}/v1/rerank`, {
      model: 'rerank-alias',
      query: 'capital of France',
      documents: ['Paris is the capital of France', 'Bananas are yellow'],
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.results.length, 2);
    assert.equal(res.json.results[0].index, 0, 'the matching document ranks first');
    const last = await mock.last();
    assert.equal(last.target, '/v1/rerank');
    assert.equal(JSON.parse(last.body).model, 'bge-reranker');
    assert.equal(res.json.model, 'rerank-alias');
  });
});

describe('token rotation and failover', { timeout: 60_000 }, () => {
  const GOOD = 'tok-good-4c81d2e9';
  const LIMITED = 'tok-limited-77e0aa13'; // answered 429 by the mock
  const WRONG = 'tok-wrong-19bd5f06'; // unknown to the mock: 401
  let mock;
  let gw;

  before(async () => {
    mock = await startMock({ tokens: TOKENS, requireKeys: [GOOD], rejectKeys: [LIMITED] });
    const provider = (id, api_tokens) => ({
      id,
      type: 'openai',
      endpoints: [mock.url],
      api_tokens,
      token_cooldown_ms: 60_000,
    });
    gw = await startGateway({
      threads: 2,
      providers: [
        provider('rate-limited-first', [LIMITED, GOOD]),
        provider('unauthorized-first', [WRONG, GOOD]),
        provider('only-bad', [LIMITED]),
      ],
      routes: [
        { models: ['limited-model'], provider: 'rate-limited-first' },
        { models: ['wrong-model'], provider: 'unauthorized-first' },
        { models: ['bad-model'], provider: 'only-bad' },
      ],
    });
  });

  after(() => {
    const output = gw.stdoutLines.join('\n') + gw.stderr;
    for (const token of [GOOD, LIMITED, WRONG]) {
      assert.ok(!output.includes(token), `token ${token} appears in the gateway output`);
    }
  });

  test('a token answered 429 rests; every request succeeds on the next token', async () => {
    await mock.reset();
    // The first request streams: the failover happens before any byte reached the client.
    const first = await streamChat(`${gw.url}/v1/chat/completions`, chat('limited-model'));
    assert.equal(first.status, 200, first.text);
    assert.equal(first.text, mockText(TOKENS));
    for (let i = 0; i < 7; i++) {
      const res =
        i % 2 === 0
          ? await postJson(`${gw.url}/v1/chat/completions`, chat('limited-model'))
          : await streamChat(`${gw.url}/v1/chat/completions`, chat('limited-model'));
      assert.equal(res.status, 200, res.text);
    }
    const stats = await mock.stats();
    assert.equal(stats.keys[LIMITED], 1, 'the refused token rests after its first 429');
    assert.equal(stats.keys[GOOD], 8);
    assert.equal(stats.rejected, 1);
  });

  test('a token answered 401 rests too', async () => {
    await mock.reset();
    for (let i = 0; i < 6; i++) {
      const res = await postJson(`${gw.url}/v1/chat/completions`, chat('wrong-model'));
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.choices[0].message.content, mockText(TOKENS));
    }
    const stats = await mock.stats();
    assert.equal(stats.unauthorized, 1, 'the wrong token was tried once');
    assert.equal(stats.keys[GOOD], 6);
  });

  test('when every token is refused the client gets an error without the token', async () => {
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('bad-model'));
    assert.ok(res.status >= 400, `status ${res.status}`);
    assert.ok(!res.text.includes(LIMITED), res.text);
    for (const [, value] of res.headers) assert.ok(!value.includes(LIMITED));
  });
});

describe('HTTPS upstreams', { timeout: 60_000 }, () => {
  let pki;
  let good; // certificate for localhost and 127.0.0.1, signed by the test CA
  let wrong; // certificate for example.com only, signed by the same CA
  let gw;

  before(async () => {
    pki = makeCertificates({
      localhost: ['DNS:localhost', 'IP:127.0.0.1'],
      other: ['DNS:example.com'],
    });
    [good, wrong] = await Promise.all([
      startMock({ tokens: TOKENS, tls: { ...pki.localhost, ca: pki.ca } }),
      startMock({ tokens: TOKENS, tls: { ...pki.other, ca: pki.ca, host: 'example.com' } }),
    ]);
    const provider = (id, endpoint, tls) => ({
      id,
      type: 'openai',
      endpoints: [endpoint],
      ...(tls ? { tls } : {}),
    });
    gw = await startGateway({
      threads: 2,
      providers: [
        provider('no-ca', `https://localhost:${good.port}`),
        provider('with-ca', `https://localhost:${good.port}`, { ca_file: pki.caFile }),
        provider('by-ip', `https://127.0.0.1:${good.port}`, { ca_file: pki.caFile }),
        provider('insecure', `https://localhost:${good.port}`, { insecure_skip_verify: true }),
        provider('wrong-name', `https://localhost:${wrong.port}`, { ca_file: pki.caFile }),
      ],
      routes: [
        { models: ['no-ca'], provider: 'no-ca' },
        { models: ['with-ca'], provider: 'with-ca' },
        { models: ['by-ip'], provider: 'by-ip' },
        { models: ['insecure'], provider: 'insecure' },
        { models: ['wrong-name'], provider: 'wrong-name' },
      ],
    });
  });

  test('a certificate from an unknown CA is an error, not a downgrade', async () => {
    await good.reset();
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('no-ca'));
    assert.equal(res.status, 502, res.text);
    assert.ok(isOpenAiError(res.json), res.text);
    assert.equal((await good.stats()).requests, 0, 'no request was sent over the unverified link');
  });

  test('tls.ca_file trusts the test CA (non-streaming and streaming)', async () => {
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('with-ca'));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, mockText(TOKENS));
    const streamed = await streamChat(`${gw.url}/v1/chat/completions`, chat('with-ca'));
    assert.equal(streamed.status, 200, streamed.text);
    assert.equal(streamed.text, mockText(TOKENS));
    const last = await good.last();
    assert.equal(last.headers.host, `localhost:${good.port}`);
  });

  test('an IP address endpoint is checked against the IP subjectAltName', async () => {
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('by-ip'));
    assert.equal(res.status, 200, res.text);
  });

  test('insecure_skip_verify: true accepts the certificate without the CA', async () => {
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('insecure'));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, mockText(TOKENS));
  });

  test('a certificate for another name is refused even from a trusted CA', async () => {
    await wrong.reset();
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('wrong-name'));
    assert.equal(res.status, 502, res.text);
    assert.equal((await wrong.stats()).requests, 0);
  });
});
