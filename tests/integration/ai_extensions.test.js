// sluice's AI extensions for plugins, end to end on a real gateway: the upstream candidate
// filter (sluice_on_upstream_filter + sluice_reject_candidate, the upstream_filter example),
// whole SSE events in proxy_on_response_body (sluice.sse_events), and what proxy_on_log sees,
// also after the client cut a stream.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  REPO,
  RawConnection,
  chunkContent,
  fetchWithTimeout,
  freePort,
  isOpenAiError,
  postJson,
  rawPost,
  readSse,
  simpleConfig,
  startGateway,
  startMock,
  waitFor,
} from './lib/harness.js';
import { pluginPath as plugin } from './lib/harness.js';


const MESSAGES = [{ role: 'user', content: 'hi' }];

function chat(gw, body = {}, headers = {}) {
  return postJson(
    `${gw.url}/v1/chat/completions`,
    { model: 'm', messages: MESSAGES, ...body },
    { headers },
  );
}

// One request on a connection of its own, so that requests spread over the worker threads.
async function chatOnNewConnection(gw) {
  const conn = await RawConnection.open(gw.port);
  try {
    const res = await conn.request(
      rawPost('/v1/chat/completions', { model: 'm', messages: MESSAGES }, { Connection: 'close' }),
    );
    assert.ok(res, 'the gateway closed the connection without an answer');
    return res;
  } finally {
    conn.close();
  }
}

// The candidates the test_upstream_reject plugin logged last ("upstream_filter saw [...]"),
// waiting for the log line (stderr arrives apart from the HTTP answer).
async function lastCandidates(gw, count = 1) {
  const pattern = /upstream_filter saw (\[.*\])/g;
  await waitFor(() => [...gw.stderr.matchAll(pattern)].length >= count, {
    what: `${count} candidate log lines`,
  });
  const lines = [...gw.stderr.matchAll(pattern)];
  return JSON.parse(lines[lines.length - 1][1]);
}

function rejectPlugin(config, extra = {}) {
  return {
    name: 'reject',
    path: plugin('test_upstream_reject'),
    config,
    failure_policy: 'fail_closed',
    ...extra,
  };
}

describe('upstream candidate filter', { timeout: 90_000 }, () => {
  let mocks;
  let ids; // endpoint id by mock url

  before(async () => {
    mocks = await Promise.all([startMock({ tokens: 3 }), startMock({ tokens: 3 }), startMock({ tokens: 3 })]);
    // The ids are stable (provider + URL): read them once through a filter that rejects nothing.
    const probe = await startGateway({
      ...simpleConfig(mocks),
      plugins: [rejectPlugin({ reject: [] })],
    });
    const result = await chat(probe);
    assert.equal(result.status, 200, result.text);
    const candidates = await lastCandidates(probe);
    ids = Object.fromEntries(candidates.map((c) => [c.url, c.id]));
    await probe.stop();
  });

  after(async () => {
    await Promise.all((mocks ?? []).map((m) => m.stop()));
  });

  test('ai.candidates lists the route workers with health, load and cache match', async () => {
    const gw = await startGateway({
      ...simpleConfig(mocks),
      plugins: [rejectPlugin({ reject: [] })],
    });
    try {
      assert.equal((await chat(gw)).status, 200);
      const candidates = await lastCandidates(gw);
      assert.deepEqual(
        candidates.map((c) => c.url).sort(),
        mocks.map((m) => m.url).sort(),
      );
      for (const c of candidates) {
        assert.match(c.id, /^mock-[0-9a-f]{8}$/);
        assert.equal(c.provider, 'mock');
        assert.equal(c.healthy, true);
        assert.equal(c.outstanding, 0);
        assert.equal(c.cache_match, 0);
      }
    } finally {
      await gw.stop();
    }
  });

  test('cache_match predicts the prefix cache of a cache_aware route', async () => {
    const config = simpleConfig(mocks.slice(0, 2));
    config.routes[0].policy = 'cache_aware';
    const gw = await startGateway({ ...config, plugins: [rejectPlugin({ reject: [] })] });
    try {
      const prompt = [{ role: 'user', content: 'the same long prompt '.repeat(40) }];
      assert.equal((await chat(gw, { messages: prompt })).status, 200);
      const first = await lastCandidates(gw, 1);
      assert.ok(first.every((c) => c.cache_match === 0), JSON.stringify(first));
      assert.equal((await chat(gw, { messages: prompt })).status, 200);
      // The first request taught one worker the prompt: it alone is predicted to hold it.
      const second = (await lastCandidates(gw, 2)).map((c) => c.cache_match).sort();
      assert.equal(second[0], 0);
      assert.ok(second[1] > 0.9, JSON.stringify(second));
    } finally {
      await gw.stop();
    }
  });

  test('a rejected worker gets no traffic; the others share it', async () => {
    const rejected = mocks[0];
    const gw = await startGateway({
      ...simpleConfig(mocks),
      plugins: [rejectPlugin({ reject: [ids[rejected.url]], reason: 'insufficient_quota' })],
    });
    try {
      const before = await Promise.all(mocks.map((m) => m.stats()));
      for (let i = 0; i < 12; i++) {
        const res = await chatOnNewConnection(gw);
        assert.equal(res.status, 200, res.body);
      }
      const after = await Promise.all(mocks.map((m) => m.stats()));
      const served = after.map((s, i) => s.requests - before[i].requests);
      assert.equal(served[0], 0, `the rejected worker served ${served[0]}`);
      assert.equal(served[1] + served[2], 12);
      assert.ok(served[1] > 0 && served[2] > 0, `traffic not shared: ${served}`);
      const line = await gw.waitForLog((l) => (l.plugin_actions ?? '').includes('upstream_filter'));
      assert.equal(line.status, 200);
      assert.equal(line.path, '/v1/chat/completions');
    } finally {
      await gw.stop();
    }
  });

  test('rejecting every worker answers 503 naming each reason, in both dialects', async () => {
    const gw = await startGateway({
      ...simpleConfig(mocks.slice(0, 2)),
      plugins: [rejectPlugin({ reject: '*', reason: 'rate_limited' })],
    });
    try {
      const before = await Promise.all(mocks.map((m) => m.stats()));
      const openai = await chat(gw);
      assert.equal(openai.status, 503, openai.text);
      assert.ok(isOpenAiError(openai.json), openai.text);
      assert.equal(openai.json.error.code, 'no_upstream_accepted');
      const message = openai.json.error.message;
      assert.match(message, /^no upstream accepted: /);
      for (const m of mocks.slice(0, 2)) assert.ok(message.includes(`${ids[m.url]} rate_limited`), message);

      const anthropic = await postJson(
        `${gw.url}/v1/messages`,
        { model: 'm', max_tokens: 10, messages: MESSAGES },
        { headers: { 'anthropic-version': '2023-06-01' } },
      );
      assert.equal(anthropic.status, 503, anthropic.text);
      assert.equal(anthropic.json.type, 'error');
      assert.match(anthropic.json.error.message, /^no upstream accepted: mock-[0-9a-f]{8} rate_limited, mock-[0-9a-f]{8} rate_limited$/);
      const after = await Promise.all(mocks.map((m) => m.stats()));
      assert.deepEqual(after.map((s) => s.requests), before.map((s) => s.requests));
    } finally {
      await gw.stop();
    }
  });

  test('plugins run in order; the second sees only what the first kept', async () => {
    const gw = await startGateway({
      ...simpleConfig(mocks),
      plugins: [
        rejectPlugin({ reject: [ids[mocks[0].url]] }, { name: 'first' }),
        rejectPlugin({ reject: [] }, { name: 'second' }),
      ],
    });
    try {
      assert.equal((await chat(gw)).status, 200);
      await waitFor(() => /plugin second: upstream_filter saw/.test(gw.stderr));
      const seen = JSON.parse(/plugin second: upstream_filter saw (\[.*\])/.exec(gw.stderr)[1]);
      assert.deepEqual(seen.map((c) => c.url).sort(), [mocks[1].url, mocks[2].url].sort());
    } finally {
      await gw.stop();
    }
  });

  test('a failing filter follows its policy: fail_open drops its verdicts, fail_closed 503s', async () => {
    const config = { reject: '*', reason: 'rejected', trap: true };
    const [open, closed] = await Promise.all([
      startGateway({
        ...simpleConfig(mocks.slice(0, 1)),
        plugins: [rejectPlugin(config, { failure_policy: 'fail_open' })],
      }),
      startGateway({
        ...simpleConfig(mocks.slice(0, 1)),
        plugins: [rejectPlugin(config, { failure_policy: 'fail_closed' })],
      }),
    ]);
    try {
      const kept = await chat(open);
      assert.equal(kept.status, 200, kept.text);
      const line = await open.waitForLog((l) => l.path === '/v1/chat/completions');
      assert.match(line.plugin_actions, /fail_open:reject/);
      assert.doesNotMatch(line.plugin_actions, /upstream_filter/);
      const failed = await chat(closed);
      assert.equal(failed.status, 503, failed.text);
      assert.equal(failed.json.error.code, 'plugin_failed');
      assert.match(failed.json.error.message, /sluice_on_upstream_filter trapped/);
    } finally {
      await Promise.all([open.stop(), closed.stop()]);
    }
  });

  test('an unknown reason is refused and the candidate stays', async () => {
    const gw = await startGateway({
      ...simpleConfig(mocks.slice(0, 1)),
      plugins: [rejectPlugin({ reject: '*', reason: 'because' })],
    });
    try {
      const result = await chat(gw);
      assert.equal(result.status, 200, result.text);
      // PW_STATUS_BAD_ARGUMENT
      await waitFor(() => gw.stderr.includes('upstream_filter: reject refused 2'));
    } finally {
      await gw.stop();
    }
  });

  test('upstream_filter example: a busy worker is rate_limited, a down one unhealthy', async () => {
    const slow = await startMock({ tokens: 2, latencyMs: 1500 });
    const deadPort = await freePort();
    const gw = await startGateway({
      threads: 2,
      providers: [
        {
          id: 'p',
          type: 'openai',
          endpoints: [slow.url, `http://127.0.0.1:${deadPort}`],
          outlier: { consecutive_failures: 1, cooldown_ms: 60000 },
        },
      ],
      routes: [{ name: 'all', models: ['*'], provider: 'p' }],
      plugins: [
        {
          name: 'upstream_filter',
          path: plugin('upstream_filter'),
          config: { max_outstanding: 0 },
          failure_policy: 'fail_closed',
        },
      ],
    });
    try {
      // Whichever worker the first request tries, it ends on the slow one (the dead one fails
      // and is then out for its cooldown); a second request while it runs finds the slow worker
      // busy and the dead one down.
      const first = chat(gw);
      await waitFor(async () => (await slow.stats()).requests >= 1, { timeoutMs: 3000 });
      // The dead worker is unhealthy once it failed: a request that tries it makes it so.
      let second;
      for (let i = 0; i < 3; i++) {
        second = await chat(gw);
        if (second.status === 503 && /unhealthy/.test(second.text)) break;
      }
      assert.equal(second.status, 503, second.text);
      assert.match(second.json.error.message, /^no upstream accepted: /);
      assert.match(second.json.error.message, /p-[0-9a-f]{8} rate_limited/);
      assert.match(second.json.error.message, /p-[0-9a-f]{8} unhealthy/);
      assert.equal((await first).status, 200);
      // Idle again: the slow worker takes requests.
      const third = await chat(gw);
      assert.equal(third.status, 200, third.text);
    } finally {
      await gw.stop();
      await slow.stop();
    }
  });
});

// An OpenAI-style upstream that streams `contents` as chat chunks and writes the stream in
// pieces of `piece` bytes, each a write of its own after a pause, so that the gateway reads
// events cut anywhere (inside "data:", inside the JSON, between "\n" and "\n").
async function startSplittingUpstream(contents, piece) {
  const server = http.createServer(async (req, res) => {
    for await (const _ of req) {
      // the request body is not needed
    }
    let stream = '';
    for (const content of contents) {
      const chunk = {
        id: 'c',
        object: 'chat.completion.chunk',
        model: 'm',
        choices: [{ index: 0, delta: { content }, finish_reason: null }],
      };
      stream += `data: ${JSON.stringify(chunk)}\n\n`;
    }
    stream += 'data: [DONE]\n\n';
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (let at = 0; at < stream.length; at += piece) {
      res.write(stream.slice(at, at + piece));
      await sleep(3);
    }
    res.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

describe('whole SSE events for plugins', { timeout: 60_000 }, () => {
  let upstream;
  let gw;

  before(async () => {
    upstream = await startSplittingUpstream(['tok0 ', 'tok1 ', 'tok2 ', 'tok3 '], 7);
    gw = await startGateway({
      ...simpleConfig([upstream]),
      plugins: [{ name: 'sse', path: plugin('test_sse_events'), failure_policy: 'fail_closed' }],
    });
  });

  after(async () => {
    await gw?.stop();
    upstream?.server.close();
  });

  async function stream(headers = {}) {
    const res = await fetchWithTimeout(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      // With include_usage asked by the client the gateway relays the upstream's bytes as
      // they come (no usage chunk to strip), so only the plugin's event mode makes them whole.
      body: JSON.stringify({
        model: 'm',
        stream: true,
        stream_options: { include_usage: true },
        messages: MESSAGES,
      }),
    });
    assert.equal(res.status, 200);
    return res.text();
  }

  test('each event reaches the plugin whole, however the upstream cut it', async () => {
    const before = gw.stderr.length;
    const text = await stream();
    // Well-formed: events separated by blank lines, each made of data lines.
    const events = text.split('\n\n');
    assert.equal(events.pop(), '');
    for (const event of events) assert.match(event, /^data: /, JSON.stringify(text));
    const contents = events
      .map((e) => e.slice(6))
      .filter((d) => d !== '[DONE]')
      .map((d) => chunkContent(d));
    // tok1's event was dropped, the others rewritten: only possible on whole events.
    assert.deepEqual(contents, ['TOK0 ', 'TOK2 ', 'TOK3 ']);
    assert.equal(events[events.length - 1], 'data: [DONE]');
    assert.ok(!gw.stderr.slice(before).includes('partial event'), gw.stderr.slice(before));
  });

  test('without sluice.sse_events the plugin gets raw pieces (the contrast)', async () => {
    const before = gw.stderr.length;
    const raw = await stream({ 'x-sse-raw': '1' });
    await waitFor(() => gw.stderr.slice(before).includes('sse_events: partial event'));
    // The plugin's rewrite of pieces is not the rewrite of events.
    assert.notEqual(raw, await stream());
  });

  test('an event over max_body_bytes follows the failure policy', async () => {
    const small = (policy) =>
      startGateway({
        ...simpleConfig([upstream]),
        plugins: [
          {
            name: 'sse',
            path: plugin('test_sse_events'),
            failure_policy: policy,
            limits: { max_body_bytes: 64 }, // the upstream's events are about 130 bytes
          },
        ],
      });
    const [open, closed] = await Promise.all([small('fail_open'), small('fail_closed')]);
    const body = JSON.stringify({
      model: 'm',
      stream: true,
      stream_options: { include_usage: true },
      messages: MESSAGES,
    });
    const post = (g) =>
      fetchWithTimeout(`${g.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      }).then((r) => r.text());
    try {
      // fail_open: the plugin is taken out and the answer passes unchanged, nothing lost.
      const passed = await post(open);
      const contents = passed
        .split('\n\n')
        .filter((e) => e.startsWith('data: {'))
        .map((e) => chunkContent(e.slice(6)));
      assert.deepEqual(contents, ['tok0 ', 'tok1 ', 'tok2 ', 'tok3 ']);
      assert.ok(passed.endsWith('data: [DONE]\n\n'), passed);
      const line = await open.waitForLog((l) => l.path === '/v1/chat/completions');
      assert.match(line.plugin_actions, /fail_open:sse/);
      // fail_closed: the stream is cut.
      let cut;
      try {
        cut = await post(closed);
      } catch {
        cut = ''; // the connection closed mid-body
      }
      assert.ok(!cut.includes('[DONE]'), cut);
      const closedLine = await closed.waitForLog((l) => l.path === '/v1/chat/completions');
      assert.match(closedLine.error, /larger than max_body_bytes/);
    } finally {
      await Promise.all([open.stop(), closed.stop()]);
    }
  });

  test('readSse sees the same events through a client', async () => {
    const res = await fetchWithTimeout(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'm',
        stream: true,
        stream_options: { include_usage: true },
        messages: MESSAGES,
      }),
    });
    const seen = [];
    for await (const event of readSse(res)) {
      if (event.data !== '[DONE]') seen.push(chunkContent(event.data));
    }
    assert.deepEqual(seen, ['TOK0 ', 'TOK2 ', 'TOK3 ']);
  });
});

describe('proxy_on_log', { timeout: 60_000 }, () => {
  let mock;
  let gw;

  before(async () => {
    mock = await startMock({ tokens: 40, tokenDelayMs: 50 });
    gw = await startGateway({
      ...simpleConfig([mock]),
      plugins: [{ name: 'sse', path: plugin('test_sse_events'), failure_policy: 'fail_open' }],
    });
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  const onLog = (id) => new RegExp(`on_log id=${id} status=(\\S+) in=(\\S+) out=(\\S+) duration_ms=(\\S+) ttft_ms=(\\S+) error=(.*)`);

  test('sees status, usage and timings of a finished stream', async () => {
    const id = `done-${Date.now()}`;
    const res = await fetchWithTimeout(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': id, 'x-sse-raw': '1' },
      body: JSON.stringify({ model: 'm', stream: true, messages: MESSAGES }),
    });
    await res.text();
    const match = await waitFor(() => onLog(id).exec(gw.stderr));
    const [, status, input, output, duration, ttft, error] = match;
    assert.equal(status, '200');
    assert.ok(Number(input) > 0, match[0]);
    assert.equal(output, '40');
    assert.ok(Number(duration) >= 40 * 50 * 0.8, match[0]);
    assert.ok(Number(ttft) >= 0 && Number(ttft) < Number(duration), match[0]);
    assert.equal(error, '-');
  });

  test('is called after the client cut a stream, with what was counted so far', async () => {
    const id = `cut-${Date.now()}`;
    const controller = new AbortController();
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': id, 'x-sse-raw': '1' },
      body: JSON.stringify({ model: 'm', stream: true, messages: MESSAGES }),
      signal: controller.signal,
    });
    let events = 0;
    try {
      for await (const event of readSse(res)) {
        if (event.data && ++events === 5) controller.abort();
      }
    } catch (error) {
      assert.equal(error.name, 'AbortError');
    }
    const match = await waitFor(() => onLog(id).exec(gw.stderr), { timeoutMs: 5000 });
    const [, status, input, output, duration, ttft, error] = match;
    assert.equal(status, '200'); // what the client got before it left
    assert.ok(Number(input) > 0, match[0]);
    assert.ok(Number(output) >= 4 && Number(output) < 40, match[0]);
    assert.ok(Number(duration) < 40 * 50, match[0]);
    assert.ok(Number(ttft) <= Number(duration), match[0]);
    assert.match(error, /client/);
  });
});
