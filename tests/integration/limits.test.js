// Rate limits: requests and tokens per minute per key and per model (GCRA, burst = the whole
// minute), the token estimate settled with the real usage (also for streams, and estimated for
// cut streams), errors in the caller's dialect, and limits shared by replicas through Redis
// (fail open or closed while Redis is down, enforced again once it is back).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  RawConnection,
  fetchWithTimeout,
  freePort,
  mockText,
  postJson,
  rawPost,
  readSse,
  startGateway,
  startMock,
  waitFor,
} from './lib/harness.js';
import { redisCommand, startRedis } from './lib/redis.js';

const TEAM_KEY = 'sk-team-0123456789abcdef';
const OTHER_KEY = 'sk-other-0123456789abcdef';
const FREE_KEY = 'sk-free-0123456789abcdef';

const bearer = (key) => ({ authorization: `Bearer ${key}` });

// A chat body; the gateway's token estimate for it is body bytes / 4 + max_tokens.
function chatBody(model, extra = {}) {
  return { model, messages: [{ role: 'user', content: 'hi' }], ...extra };
}
const estimateOf = (body) => Math.floor(JSON.stringify(body).length / 4) + (body.max_tokens ?? 0);

const chat = (gateway, key, body, headers = {}) =>
  postJson(`${gateway.url}/v1/chat/completions`, body, {
    headers: { ...bearer(key), ...headers },
  });

function gatewayConfig(mock, extra = {}) {
  return {
    threads: 2,
    providers: [{ id: 'mock', type: 'openai', endpoints: [mock.url] }],
    routes: [{ name: 'all', models: ['*'], provider: 'mock' }],
    ...extra,
  };
}

// Sends every body at once, each on its own new connection (so that both worker threads take
// some), and returns the responses in order.
async function concurrent(gateway, key, bodies) {
  const connections = await Promise.all(bodies.map(() => RawConnection.open(gateway.port)));
  try {
    return await Promise.all(
      bodies.map((body, i) =>
        connections[i].request(
          rawPost('/v1/chat/completions', body, {
            Authorization: `Bearer ${key}`,
            Connection: 'close',
          }),
        ),
      ),
    );
  } finally {
    for (const c of connections) c.close();
  }
}

// Header value from a fetch Headers object or a RawConnection's plain object.
const header = (headers, name) =>
  typeof headers.get === 'function' ? headers.get(name) : headers[name];

function assertLimitHeaders(headers, { requests, remainingRequests, tokens }) {
  if (requests !== undefined) {
    assert.equal(header(headers, 'x-ratelimit-limit-requests'), String(requests));
    assert.match(header(headers, 'x-ratelimit-remaining-requests') ?? '', /^\d+$/);
    assert.match(header(headers, 'x-ratelimit-reset-requests') ?? '', /^\d+ms$/);
  }
  if (remainingRequests !== undefined) {
    assert.equal(header(headers, 'x-ratelimit-remaining-requests'), String(remainingRequests));
  }
  if (tokens !== undefined) {
    assert.equal(header(headers, 'x-ratelimit-limit-tokens'), String(tokens));
    assert.match(header(headers, 'x-ratelimit-remaining-tokens') ?? '', /^\d+$/);
    assert.match(header(headers, 'x-ratelimit-reset-tokens') ?? '', /^\d+ms$/);
  }
}

const resetMs = (headers, kind) =>
  Number(/^(\d+)ms$/.exec(header(headers, `x-ratelimit-reset-${kind}`))[1]);

function assertRateLimited(res, code = 'rate_limit_exceeded') {
  assert.equal(res.status, 429, res.text);
  assert.equal(res.json?.error?.type, 'rate_limit_error', res.text);
  assert.equal(res.json.error.code, code, res.text);
  assert.equal(typeof res.json.error.message, 'string');
}

// The access log lines of `gateway` for chat requests of `keyId`, in order.
const chatLines = (gateway, keyId) =>
  gateway
    .accessLog()
    .filter((l) => l.path === '/v1/chat/completions' && l.key_id === keyId);

// Waits until `gateway` has logged `count` chat lines of `keyId`, and returns the last one.
async function nthLine(gateway, keyId, count) {
  await waitFor(() => chatLines(gateway, keyId).length >= count, {
    timeoutMs: 5000,
    what: `${count} access log lines of key ${keyId}`,
  });
  return chatLines(gateway, keyId)[count - 1];
}

// ---------------------------------------------------------------------------------------------
// Redis: tests/integration/lib/redis.js.

// ---------------------------------------------------------------------------------------------

describe('rate limits', () => {
  const started = [];
  after(async () => {
    await Promise.all(started.map((p) => p.stop()));
  });

  test('requests per minute are exact across threads, per key, and per model across keys', async () => {
    const mock = await startMock({ tokens: 2 });
    started.push(mock);
    const gateway = await startGateway(
      gatewayConfig(mock, {
        keys: [
          { id: 'team', key: TEAM_KEY, models: ['*'], rpm: 5, tpm: 1000, daily_tokens: 100000 },
          { id: 'other', key: OTHER_KEY, models: ['*'], rpm: 5 },
          { id: 'free', key: FREE_KEY, models: ['*'] },
          { id: 'burst', key: 'sk-burst-0123456789abcdef', models: ['*'], rpm: 5 },
        ],
        limits: {
          models: [
            { model: 'gpt-4o', rpm: 10, tpm: 0 },
            { model: 'gpt-4*', rpm: 2 },
            { model: 'gpt-*', rpm: 1000 },
          ],
        },
      }),
    );
    started.push(gateway);

    // Five at once on five connections: all pass, each sees a distinct remaining count.
    const five = await concurrent(
      gateway,
      TEAM_KEY,
      Array.from({ length: 5 }, () => chatBody('gpt-4o')),
    );
    assert.deepEqual(
      five.map((r) => r.status),
      [200, 200, 200, 200, 200],
      five.map((r) => r.text).join('\n'),
    );
    for (const r of five) assertLimitHeaders(r.headers, { requests: 5, tokens: 1000 });
    assert.deepEqual(
      five.map((r) => Number(r.headers['x-ratelimit-remaining-requests'])).sort(),
      [0, 1, 2, 3, 4],
    );

    // The sixth is refused: the next slot frees 60 s / 5 = 12 s after the burst.
    const sixth = await chat(gateway, TEAM_KEY, chatBody('gpt-4o'));
    assertRateLimited(sixth);
    assert.match(sixth.json.error.message, /5 requests per minute for this key/);
    const retryAfter = Number(sixth.headers.get('retry-after'));
    assert.ok(retryAfter >= 10 && retryAfter <= 12, `retry-after ${retryAfter}`);
    assertLimitHeaders(sixth.headers, { requests: 5, remainingRequests: 0, tokens: 1000 });
    const reset = resetMs(sixth.headers, 'requests');
    assert.ok(reset > 55_000 && reset <= 60_000, `reset ${reset} ms`);
    assert.equal((await mock.stats()).requests, 5, 'a refused request never reaches the upstream');

    // Another key has its own counter.
    const other = await chat(gateway, OTHER_KEY, chatBody('gpt-4o'));
    assert.equal(other.status, 200, other.text);
    assertLimitHeaders(other.headers, { requests: 5, remainingRequests: 4 });

    // gpt-4o allows 10 per minute whatever the key: 5 (team) + 1 (other) so far; a key without
    // limits of its own gets the remaining 4, then the model's limit refuses every key.
    for (let i = 0; i < 4; i++) {
      const res = await chat(gateway, FREE_KEY, chatBody('gpt-4o'));
      assert.equal(res.status, 200, res.text);
      assertLimitHeaders(res.headers, { requests: 10, remainingRequests: 3 - i });
      assert.equal(res.headers.get('x-ratelimit-limit-tokens'), null, 'no token limit applies');
    }
    const modelFull = await chat(gateway, FREE_KEY, chatBody('gpt-4o'));
    assertRateLimited(modelFull);
    assert.match(modelFull.json.error.message, /10 requests per minute for this model/);
    assertLimitHeaders(modelFull.headers, { requests: 10, remainingRequests: 0 });
    assert.ok(Number(modelFull.headers.get('retry-after')) >= 1);
    // "other" still has 4 requests of its own, but the model is full.
    const otherModelFull = await chat(gateway, OTHER_KEY, chatBody('gpt-4o'));
    assertRateLimited(otherModelFull);
    assert.match(otherModelFull.json.error.message, /for this model/);

    // The longest matching pattern applies ("gpt-4*": 2), to each model name separately.
    for (const model of ['gpt-4o-mini', 'gpt-4o-mini', 'gpt-4.1', 'gpt-4.1']) {
      const res = await chat(gateway, FREE_KEY, chatBody(model));
      assert.equal(res.status, 200, `${model}: ${res.text}`);
      assertLimitHeaders(res.headers, { requests: 2 });
    }
    const patternFull = await chat(gateway, OTHER_KEY, chatBody('gpt-4o-mini'));
    assertRateLimited(patternFull);
    assert.match(patternFull.json.error.message, /2 requests per minute for this model/);
    const wide = await chat(gateway, FREE_KEY, chatBody('gpt-3.5-turbo')); // "gpt-*": 1000
    assert.equal(wide.status, 200, wide.text);
    assertLimitHeaders(wide.headers, { requests: 1000, remainingRequests: 999 });
    assert.equal((await mock.stats()).requests, 5 + 1 + 4 + 4 + 1);

    // Twenty at once for a key of 5 per minute: exactly 5 pass, whichever thread takes them.
    const burst = await concurrent(
      gateway,
      'sk-burst-0123456789abcdef',
      Array.from({ length: 20 }, () => chatBody('claude-unlimited')),
    );
    const statuses = burst.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 5, statuses.join(','));
    assert.equal(statuses.filter((s) => s === 429).length, 15, statuses.join(','));
    for (const r of burst.filter((b) => b.status === 429)) {
      assert.equal(r.json.error.code, 'rate_limit_exceeded');
      assert.ok(Number(r.headers['retry-after']) >= 1);
    }
  });

  test('an Anthropic client over a limit gets an Anthropic rate_limit_error', async () => {
    const mock = await startMock({ tokens: 2 });
    started.push(mock);
    const gateway = await startGateway(
      gatewayConfig(mock, {
        keys: [{ id: 'team', key: TEAM_KEY, models: ['*'], rpm: 1, tpm: 1000 }],
      }),
    );
    started.push(gateway);
    const messages = (maxTokens) =>
      postJson(
        `${gateway.url}/v1/messages`,
        { model: 'claude-x', max_tokens: maxTokens, messages: [{ role: 'user', content: 'hi' }] },
        { headers: { 'x-api-key': TEAM_KEY, 'anthropic-version': '2023-06-01' } },
      );

    const first = await messages(10);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.type, 'message');
    assertLimitHeaders(first.headers, { requests: 1, remainingRequests: 0, tokens: 1000 });

    const second = await messages(10);
    assert.equal(second.status, 429, second.text);
    assert.equal(second.json.type, 'error');
    assert.equal(second.json.error.type, 'rate_limit_error');
    assert.match(second.json.error.message, /requests per minute/);
    assert.equal(second.json.error.code, undefined, 'Anthropic errors have no code member');
    assert.ok(Number(second.headers.get('retry-after')) >= 1);

    // Too costly for the token limit: also Anthropic-shaped, and waiting would not help.
    const costly = await messages(5000);
    assert.equal(costly.status, 429, costly.text);
    assert.equal(costly.json.type, 'error');
    assert.equal(costly.json.error.type, 'rate_limit_error');
    assert.match(costly.json.error.message, /tokens per minute/);
    assert.equal((await mock.stats()).requests, 1);
  });

  test('token limits reserve the estimate and settle with the real usage', async () => {
    const mock = await startMock({ tokens: 5 });
    started.push(mock);
    const TPM = 300;
    const gateway = await startGateway(
      gatewayConfig(mock, {
        keys: [{ id: 'tok', key: TEAM_KEY, models: ['*'], tpm: TPM }],
      }),
    );
    started.push(gateway);

    // Estimate ≈ 20 + 250 = 270 of 300: without a refund the second one could not pass for
    // ~48 s (300 per minute refills 5 a second).
    const big = chatBody('gpt-4o', { max_tokens: 250 });
    const estimate = estimateOf(big);
    assert.ok(estimate > TPM / 2 && estimate <= TPM, `estimate ${estimate}`);

    const first = await chat(gateway, TEAM_KEY, big);
    assert.equal(first.status, 200, first.text);
    assertLimitHeaders(first.headers, { tokens: TPM });
    // Admission charged the whole estimate.
    const remainingAfterFirst = Number(first.headers.get('x-ratelimit-remaining-tokens'));
    assert.ok(
      remainingAfterFirst >= TPM - estimate && remainingAfterFirst <= TPM - estimate + 1,
      `remaining ${remainingAfterFirst}, estimate ${estimate}`,
    );
    const line1 = await nthLine(gateway, 'tok', 1);
    assert.equal(line1.usage, 'reported');
    assert.equal(line1.output_tokens, 5);
    const used1 = line1.input_tokens + line1.output_tokens;
    assert.equal(used1, first.json.usage.total_tokens);
    assert.ok(used1 + estimate <= TPM, `real usage ${used1} leaves room for another estimate`);
    await sleep(100); // the settlement runs just after the answer

    const second = await chat(gateway, TEAM_KEY, big);
    assert.equal(second.status, 200, `the refund of the first request is missing: ${second.text}`);
    // Now charged: the first one's real usage plus the second's estimate (+ a few refilled).
    const remainingAfterSecond = Number(second.headers.get('x-ratelimit-remaining-tokens'));
    const expected = TPM - used1 - estimate;
    assert.ok(
      remainingAfterSecond >= expected && remainingAfterSecond <= expected + 5,
      `remaining ${remainingAfterSecond}, expected about ${expected}`,
    );
    const line2 = await nthLine(gateway, 'tok', 2);
    const used2 = line2.input_tokens + line2.output_tokens;
    await sleep(100);

    // The settlement charged the real usage, not nothing: two real usages and a third estimate
    // exceed the limit, and the wait is what the missing tokens take to refill.
    assert.ok(used1 + used2 + estimate > TPM + 10, 'the test needs a margin');
    const third = await chat(gateway, TEAM_KEY, big);
    assertRateLimited(third);
    assert.match(third.json.error.message, /300 tokens per minute for this key/);
    const retryAfter = Number(third.headers.get('retry-after'));
    const missing = used1 + used2 + estimate - TPM;
    const expectedWait = Math.ceil((missing * 60) / TPM);
    assert.ok(
      retryAfter >= expectedWait - 1 && retryAfter <= expectedWait,
      `retry-after ${retryAfter}, expected about ${expectedWait}`,
    );
    // A small request still fits in what is left.
    const small = await chat(gateway, TEAM_KEY, chatBody('gpt-4o', { max_tokens: 10 }));
    assert.equal(small.status, 200, small.text);

    // More than the whole limit by itself: refused at once, with no retry-after.
    for (const field of ['max_tokens', 'max_completion_tokens']) {
      const costly = await chat(gateway, TEAM_KEY, chatBody('gpt-4o', { [field]: TPM + 1 }));
      assertRateLimited(costly, 'request_too_costly');
      assert.equal(costly.headers.get('retry-after'), null, field);
    }
    assert.equal((await mock.stats()).requests, 3);
  });

  test('a daily token budget settles too, and refuses until the end of the UTC day', async () => {
    const mock = await startMock({ tokens: 5 });
    started.push(mock);
    const BUDGET = 300;
    const gateway = await startGateway(
      gatewayConfig(mock, {
        keys: [{ id: 'day', key: TEAM_KEY, models: ['*'], daily_tokens: BUDGET }],
      }),
    );
    started.push(gateway);
    const untilMidnightMs = () => 86_400_000 - (Date.now() % 86_400_000);

    const big = chatBody('gpt-4o', { max_tokens: 250 });
    const estimate = estimateOf(big);
    const first = await chat(gateway, TEAM_KEY, big);
    assert.equal(first.status, 200, first.text);
    assertLimitHeaders(first.headers, { tokens: BUDGET });
    assert.equal(first.headers.get('x-ratelimit-limit-requests'), null);
    assert.equal(Number(first.headers.get('x-ratelimit-remaining-tokens')), BUDGET - estimate);
    assert.ok(Math.abs(resetMs(first.headers, 'tokens') - untilMidnightMs()) < 5000);
    const line1 = await nthLine(gateway, 'day', 1);
    const used1 = line1.input_tokens + line1.output_tokens;
    await sleep(100);

    // Refunded to the real usage (a day budget does not refill: this is the settlement alone).
    const second = await chat(gateway, TEAM_KEY, big);
    assert.equal(second.status, 200, `the refund of the first request is missing: ${second.text}`);
    assert.equal(
      Number(second.headers.get('x-ratelimit-remaining-tokens')),
      BUDGET - used1 - estimate,
    );
    const line2 = await nthLine(gateway, 'day', 2);
    const used2 = line2.input_tokens + line2.output_tokens;
    await sleep(100);

    const third = await chat(gateway, TEAM_KEY, big);
    assertRateLimited(third);
    assert.match(third.json.error.message, /300 tokens per day for this key/);
    assert.equal(Number(third.headers.get('x-ratelimit-remaining-tokens')), BUDGET - used1 - used2);
    const retryAfter = Number(third.headers.get('retry-after'));
    assert.ok(
      Math.abs(retryAfter - untilMidnightMs() / 1000) < 5,
      `retry-after ${retryAfter}, ${untilMidnightMs() / 1000} s to midnight UTC`,
    );
    const costly = await chat(gateway, TEAM_KEY, chatBody('gpt-4o', { max_tokens: BUDGET }));
    assertRateLimited(costly, 'request_too_costly');
    assert.match(costly.json.error.message, /tokens per day/);
  });

  test('streams are metered from the usage the gateway asks for, and hidden unless asked', async () => {
    const TOKENS = 6;
    const mock = await startMock({ tokens: TOKENS });
    started.push(mock);
    const TPM = 300;
    const gateway = await startGateway(
      gatewayConfig(mock, {
        keys: [{ id: 'stream', key: TEAM_KEY, models: ['*'], tpm: TPM }],
      }),
    );
    started.push(gateway);

    const streamChat = async (body) => {
      const res = await fetchWithTimeout(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(TEAM_KEY) },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 200);
      const events = [];
      for await (const event of readSse(res)) events.push(event.data);
      return { res, events };
    };
    const usagesOf = (events) =>
      events
        .filter((d) => d !== '[DONE]')
        .map((d) => JSON.parse(d))
        .filter((c) => c.usage !== undefined && c.usage !== null);
    const textOf = (events) =>
      events
        .filter((d) => d !== '[DONE]')
        .map((d) => JSON.parse(d).choices?.[0]?.delta?.content ?? '')
        .join('');

    // Not asked: the gateway asks the upstream anyway, meters it, and hides the chunk.
    const big = chatBody('gpt-4o', { stream: true, max_tokens: 220 });
    const bigAsking = { ...big, stream_options: { include_usage: true } };
    const plain = await streamChat(big);
    assertLimitHeaders(plain.res.headers, { tokens: TPM });
    assert.equal(textOf(plain.events), mockText(TOKENS));
    assert.equal(plain.events.at(-1), '[DONE]');
    assert.deepEqual(usagesOf(plain.events), [], 'the client did not ask for usage');
    assert.deepEqual(JSON.parse((await mock.last()).body).stream_options, { include_usage: true });
    const line1 = await nthLine(gateway, 'stream', 1);
    assert.equal(line1.stream, true);
    assert.equal(line1.usage, 'reported');
    assert.equal(line1.output_tokens, TOKENS);
    assert.ok(line1.input_tokens > 0);
    const used1 = line1.input_tokens + line1.output_tokens;
    await sleep(100);

    // The stream's real usage was settled: a second estimate fits again (without the refund it
    // would wait ~40 s).
    const estimate = estimateOf(bigAsking);
    assert.ok(used1 + estimate <= TPM && 2 * estimate > TPM + 50, `${used1} + ${estimate}`);
    const asked = await streamChat(bigAsking);
    const usages = usagesOf(asked.events);
    assert.equal(usages.length, 1, 'the client asked for usage: exactly one usage chunk');
    assert.equal(usages[0].usage.completion_tokens, TOKENS);
    assert.deepEqual(usages[0].choices, []);
    assert.equal(textOf(asked.events), mockText(TOKENS));
    const line2 = await nthLine(gateway, 'stream', 2);
    assert.equal(line2.usage, 'reported');
    assert.equal(line2.output_tokens, TOKENS);
    assert.equal(line2.input_tokens, usages[0].usage.prompt_tokens);
  });

  test('a stream the client cuts is charged an estimate of what was relayed', async () => {
    const TOKENS = 60;
    const mock = await startMock({ tokens: TOKENS, tokenDelayMs: 40 });
    started.push(mock);
    const gateway = await startGateway(
      gatewayConfig(mock, {
        keys: [{ id: 'cut', key: TEAM_KEY, models: ['*'], tpm: 1000 }],
      }),
    );
    started.push(gateway);

    // The estimate (~920) takes nearly the whole limit; only the estimate of what was relayed
    // stays charged once the client leaves.
    const body = chatBody('gpt-4o', { stream: true, max_tokens: 900 });
    const controller = new AbortController();
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(TEAM_KEY) },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    assert.ok(Number(res.headers.get('x-ratelimit-remaining-tokens')) < 1000 - 900);
    let contentChunks = 0;
    try {
      for await (const event of readSse(res)) {
        if (event.data !== '[DONE]' && JSON.parse(event.data).choices?.[0]?.delta?.content) {
          contentChunks += 1;
        }
        if (contentChunks === 3) controller.abort();
      }
    } catch (err) {
      if (err.name !== 'AbortError') throw err;
    }
    assert.equal(contentChunks, 3);

    const line = await nthLine(gateway, 'cut', 1);
    assert.equal(line.stream, true);
    assert.equal(line.usage, 'estimated', JSON.stringify(line));
    assert.ok(
      line.output_tokens >= 3 && line.output_tokens < TOKENS,
      `output_tokens ${line.output_tokens} of ${TOKENS}`,
    );
    // The gateway stopped reading the upstream soon after the client left.
    assert.ok(line.output_tokens <= 10, `output_tokens ${line.output_tokens}`);
    assert.match(line.error ?? '', /client/);

    // The cut stream was settled with that estimate: the same request fits again at once
    // (without the refund it would wait ~50 s).
    await sleep(100);
    const again = await chat(gateway, TEAM_KEY, { ...body, stream: false });
    assert.equal(again.status, 200, `the cut stream's reservation was not settled: ${again.text}`);
  });

  test('replicas share limits through Redis exactly', async () => {
    const redis = await startRedis(await freePort());
    const mock = await startMock({ tokens: 5 });
    started.push(mock);
    const N = 4;
    const config = gatewayConfig(mock, {
      keys: [
        { id: 'shared', key: TEAM_KEY, models: ['*'], rpm: N },
        { id: 'shared-burst', key: OTHER_KEY, models: ['*'], rpm: N },
        { id: 'shared-tokens', key: FREE_KEY, models: ['*'], tpm: 300 },
      ],
      limits: { redis: `redis://127.0.0.1:${redis.port}`, on_redis_error: 'reject' },
    });
    const replicas = [await startGateway(config), await startGateway(config)];
    started.push(...replicas);

    // Alternating: N pass in total, whichever replica; then both refuse.
    for (let i = 0; i < N; i++) {
      const res = await chat(replicas[i % 2], TEAM_KEY, chatBody('gpt-4o'));
      assert.equal(res.status, 200, `request ${i + 1} on replica ${i % 2}: ${res.text}`);
      assertLimitHeaders(res.headers, { requests: N, remainingRequests: N - 1 - i });
    }
    for (const replica of replicas) {
      const res = await chat(replica, TEAM_KEY, chatBody('gpt-4o'));
      assertRateLimited(res);
      assertLimitHeaders(res.headers, { requests: N, remainingRequests: 0 });
      const retryAfter = Number(res.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 15, `retry-after ${retryAfter}`);
    }

    // A burst split over both replicas (and their threads): exactly N pass.
    const burst = (
      await Promise.all(
        replicas.map((r) =>
          concurrent(r, OTHER_KEY, Array.from({ length: 3 * N }, () => chatBody('gpt-4o'))),
        ),
      )
    ).flat();
    const statuses = burst.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, N, statuses.join(','));
    assert.equal(statuses.filter((s) => s === 429).length, 5 * N, statuses.join(','));

    // A refund settled on one replica is seen by the other.
    const big = chatBody('gpt-4o', { max_tokens: 250 });
    const first = await chat(replicas[0], FREE_KEY, big);
    assert.equal(first.status, 200, first.text);
    await nthLine(replicas[0], 'shared-tokens', 1);
    await sleep(200);
    const second = await chat(replicas[1], FREE_KEY, big);
    assert.equal(second.status, 200, `the refund did not reach Redis: ${second.text}`);
    await nthLine(replicas[1], 'shared-tokens', 1);
    await sleep(200);
    assertRateLimited(await chat(replicas[0], FREE_KEY, big));
    await redis.kill();
  });

  test('keys created or revoked on one replica apply on the other within a second', async () => {
    const redis = await startRedis(await freePort());
    const mock = await startMock({ tokens: 2 });
    started.push(mock);
    const ADMIN = 'admin-token-for-replicas-0123';
    const replicas = [];
    for (let r = 0; r < 2; r++) {
      const adminPort = await freePort();
      const gateway = await startGateway(
        gatewayConfig(mock, {
          admin: { listen: `127.0.0.1:${adminPort}`, token: ADMIN },
          keys: [{ id: 'team', key: TEAM_KEY, models: ['*'] }],
          limits: { redis: `redis://127.0.0.1:${redis.port}` },
        }),
      );
      gateway.adminUrl = `http://127.0.0.1:${adminPort}`;
      replicas.push(gateway);
    }
    started.push(...replicas);
    const admin = async (gateway, method, path, body) => {
      const res = await fetchWithTimeout(`${gateway.adminUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: await res.json() };
    };
    const created = await admin(replicas[0], 'POST', '/keys', { id: 'new' });
    assert.equal(created.status, 201);
    for (const replica of replicas) {
      assert.equal((await chat(replica, TEAM_KEY, chatBody('gpt-4o'))).status, 200);
    }
    // The key created on replica 0 works on replica 1 within a second.
    let start = Date.now();
    await waitFor(
      async () => (await chat(replicas[1], created.json.key, chatBody('gpt-4o'))).status === 200,
      { timeoutMs: 1000, intervalMs: 20, what: 'the new key on replica 1' },
    );
    // Revoked on replica 1: refused by both within a second.
    assert.equal((await admin(replicas[1], 'DELETE', '/keys/team')).status, 200);
    start = Date.now();
    await waitFor(
      async () => (await chat(replicas[0], TEAM_KEY, chatBody('gpt-4o'))).status === 401,
      { timeoutMs: 1000, intervalMs: 20, what: 'the revocation on replica 0' },
    );
    assert.ok(Date.now() - start < 1000);
    for (const replica of replicas) {
      const refused = await chat(replica, TEAM_KEY, chatBody('gpt-4o'));
      assert.equal(refused.status, 401);
      assert.match(refused.json.error.message, /revoked/);
    }
    await redis.kill();
  });

  test('while Redis is down requests pass (allow) or get 503 (reject); limits return with it', async () => {
    const redisPort = await freePort();
    let redis = await startRedis(redisPort);
    const mock = await startMock({ tokens: 2 });
    started.push(mock);
    // One thread each, so that one answer with limit headers shows the only connection is back.
    const config = (mode) =>
      gatewayConfig(mock, {
        threads: 1,
        keys: [
          { id: 'r', key: TEAM_KEY, models: ['*'], rpm: 3 },
          { id: 'probe', key: OTHER_KEY, models: ['*'], rpm: 100000 },
        ],
        limits: { redis: `redis://127.0.0.1:${redisPort}`, on_redis_error: mode },
      });
    const allow = await startGateway(config('allow'));
    const reject = await startGateway(config('reject'));
    started.push(allow, reject);

    // Shared and enforced: 3 in all, the 4th refused.
    for (const g of [allow, reject, allow]) {
      assert.equal((await chat(g, TEAM_KEY, chatBody('gpt-4o'))).status, 200);
    }
    assertRateLimited(await chat(reject, TEAM_KEY, chatBody('gpt-4o')));
    assertRateLimited(await chat(allow, TEAM_KEY, chatBody('gpt-4o')));

    await redis.kill();

    // Fail open: the exhausted key passes, unchecked.
    for (let i = 0; i < 5; i++) {
      const res = await chat(allow, TEAM_KEY, chatBody('gpt-4o'));
      assert.equal(res.status, 200, `fail open, request ${i + 1}: ${res.text}`);
      assert.equal(res.headers.get('x-ratelimit-limit-requests'), null, 'nothing was checked');
    }
    // Fail closed: 503 limiter_unavailable, for any limited key, and nothing reaches the mock.
    const before = (await mock.stats()).requests;
    for (const key of [TEAM_KEY, OTHER_KEY]) {
      const res = await chat(reject, key, chatBody('gpt-4o'));
      assert.equal(res.status, 503, res.text);
      assert.equal(res.json?.error?.code, 'limiter_unavailable', res.text);
    }
    assert.equal((await mock.stats()).requests, before);
    await waitFor(() => /rate limits: redis admit failed/.test(reject.stderr), {
      what: 'the Redis failure warning',
    });

    // Redis is back (empty: it kept nothing): both gateways reconnect and enforce again.
    redis = await startRedis(redisPort);
    for (const g of [allow, reject]) {
      await waitFor(
        async () => {
          const res = await chat(g, OTHER_KEY, chatBody('gpt-4o'));
          return res.status === 200 && res.headers.get('x-ratelimit-limit-requests') === '100000';
        },
        { timeoutMs: 8000, intervalMs: 100, what: 'limits enforced again' },
      );
    }
    for (let i = 0; i < 3; i++) {
      const res = await chat(i % 2 ? reject : allow, TEAM_KEY, chatBody('gpt-4o'));
      assert.equal(res.status, 200, res.text);
      assertLimitHeaders(res.headers, { requests: 3, remainingRequests: 2 - i });
    }
    assertRateLimited(await chat(allow, TEAM_KEY, chatBody('gpt-4o')));
    assertRateLimited(await chat(reject, TEAM_KEY, chatBody('gpt-4o')));
    await redis.kill();
  });
});
