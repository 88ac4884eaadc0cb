// Route pools against several mock workers (one `sluice mock` process each): how requests are
// spread (round robin, weights, consistent hashing, cache-aware), and how failing workers are
// hidden from clients (retries, first-byte timeouts, the passive breaker, active health checks,
// fallback routes) or reported (no healthy upstream, total timeout).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  fetchWithTimeout,
  freePort,
  isOpenAiError,
  postJson,
  startGateway,
  startMock,
  waitFor,
} from './lib/harness.js';

// ---------------------------------------------------------------------------------------------
// Helpers.

// A gateway config with one provider over `endpoints` and one catch-all route over it.
function poolConfig(endpoints, { route = {}, provider = {} } = {}) {
  return {
    threads: 2,
    providers: [{ id: 'pool', type: 'openai', endpoints, ...provider }],
    routes: [{ name: 'main', models: ['*'], provider: 'pool', ...route }],
  };
}

const deadUrl = async () => `http://127.0.0.1:${await freePort()}`;

let sequence = 0;
// POSTs one chat request with a fresh x-request-id; returns postJson's result plus `id` and
// `ms` (time to the whole answer).
async function chat(gw, { model = 'm', content = 'hi', messages, headers = {}, path } = {}) {
  const id = `bal-${process.pid}-${++sequence}`;
  const start = Date.now();
  const result = await postJson(
    `${gw.url}${path ?? '/v1/chat/completions'}`,
    { model, messages: messages ?? [{ role: 'user', content }] },
    { headers: { 'x-request-id': id, ...headers } },
  );
  return { ...result, id, ms: Date.now() - start };
}

// Runs fn(0..count-1) with at most `concurrency` calls in flight; resolves to the results in
// index order.
async function runConcurrently(count, concurrency, fn) {
  const results = new Array(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return results;
}

// The access log lines of the requests with these ids (waits for all of them), by id.
async function logLines(gw, ids) {
  const wanted = new Set(ids);
  return waitFor(
    () => {
      const byId = new Map();
      for (const line of gw.accessLog()) {
        if (wanted.has(line.request_id)) byId.set(line.request_id, line);
      }
      return byId.size === wanted.size ? byId : null;
    },
    { timeoutMs: 5000, what: `${wanted.size} access log lines` },
  );
}

// The API requests each mock has received so far.
async function requestCounts(mocks) {
  return Promise.all(mocks.map(async (m) => (await m.stats()).requests));
}

function assertAllOk(results, what) {
  const failed = results.filter((r) => r.status !== 200);
  assert.equal(
    failed.length,
    0,
    `${what}: ${failed.length} of ${results.length} requests failed, e.g. ` +
      failed
        .slice(0, 3)
        .map((r) => `${r.id}: ${r.status} ${r.text}`)
        .join('; '),
  );
}

// How many log lines name each upstream URL.
function countByUpstream(lines) {
  const counts = {};
  for (const line of lines) counts[line.upstream] = (counts[line.upstream] ?? 0) + 1;
  return counts;
}

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'];

// Deterministic filler text (a small LCG over a word list), so prompts are the same every run.
function fillerText(seed, chars) {
  let state = seed >>> 0;
  let text = '';
  while (text.length < chars) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    text += WORDS[state >>> 29] + ' ';
  }
  return text.slice(0, chars);
}

// ---------------------------------------------------------------------------------------------

describe('balancing', { timeout: 60_000 }, () => {
  test('round_robin spreads requests evenly; endpoint weights 3:1 give a 3:1 share', async () => {
    const mocks = await Promise.all([1, 2, 3].map(() => startMock({ tokens: 3 })));
    const [heavy, light] = await Promise.all([1, 2].map(() => startMock({ tokens: 3 })));
    const gw = await startGateway({
      threads: 2,
      providers: [
        { id: 'even', type: 'openai', endpoints: mocks.map((m) => m.url) },
        { id: 'weighted', type: 'openai', endpoints: [{ url: heavy.url, weight: 3 }, light.url] },
      ],
      routes: [
        { name: 'even', models: ['even'], provider: 'even', policy: 'round_robin' },
        { name: 'weighted', models: ['weighted'], provider: 'weighted', policy: 'round_robin' },
      ],
    });
    try {
      const even = await runConcurrently(180, 4, () => chat(gw, { model: 'even' }));
      assertAllOk(even, 'even pool');
      const counts = await requestCounts(mocks);
      assert.equal(counts.reduce((a, b) => a + b), 180, `mock counts ${counts}`);
      // Round robin over equal weights is a strict cycle: 60 each (a little slack for safety).
      assert.ok(
        Math.max(...counts) - Math.min(...counts) <= 2,
        `180 requests over 3 workers should be ~60 each, got ${counts}`,
      );
      // The access log names the worker that answered; it agrees with the mocks' counters.
      const byUpstream = countByUpstream((await logLines(gw, even.map((r) => r.id))).values());
      assert.deepEqual(
        mocks.map((m) => byUpstream[m.url] ?? 0),
        counts,
        `access log "upstream" counts ${JSON.stringify(byUpstream)} vs mock counts ${counts}`,
      );

      const weighted = await runConcurrently(200, 4, () => chat(gw, { model: 'weighted' }));
      assertAllOk(weighted, 'weighted pool');
      const [h, l] = await requestCounts([heavy, light]);
      assert.equal(h + l, 200);
      assert.ok(h >= 140 && h <= 160, `weight 3 vs 1 over 200 requests: ${h} vs ${l}`);
    } finally {
      await gw.stop();
      await Promise.all([...mocks, heavy, light].map((m) => m.stop()));
    }
  });

  test('a worker killed in the middle of a run causes no client-visible failure', async () => {
    // A little latency keeps requests in flight on the victim when it dies.
    const mocks = await Promise.all([1, 2, 3].map(() => startMock({ tokens: 3, latencyMs: 5 })));
    const victim = mocks[1];
    const gw = await startGateway(poolConfig(mocks.map((m) => m.url)));
    try {
      let done = 0;
      let killed;
      const results = await runConcurrently(200, 4, async () => {
        const result = await chat(gw);
        if (++done === 60) killed = victim.stop('SIGKILL');
        return result;
      });
      await killed;
      assertAllOk(results, 'requests around the kill');
      const lines = [...(await logLines(gw, results.map((r) => r.id))).values()];
      const byUpstream = countByUpstream(lines);
      assert.ok(
        (byUpstream[victim.url] ?? 0) >= 15,
        `the victim served ${byUpstream[victim.url]} requests before it died`,
      );
      const retries = lines.reduce((sum, l) => sum + l.retries, 0);
      assert.ok(retries >= 1, 'no request was retried: the kill went unnoticed');
      // After the kill, later requests went to the survivors only.
      const tail = results.slice(150).map((r) => lines.find((l) => l.request_id === r.id));
      assert.ok(
        tail.every((l) => l.upstream !== victim.url),
        `requests after the kill answered by the dead worker: ${JSON.stringify(tail)}`,
      );
    } finally {
      await gw.stop();
      await Promise.all(mocks.map((m) => m.stop()));
    }
  });

  test('a worker failing half its requests is hidden by retries', async () => {
    const [flaky, good] = await Promise.all([
      startMock({ tokens: 3, failRate: 0.5, seed: 42 }),
      startMock({ tokens: 3 }),
    ]);
    // The breaker is off so that retries alone hide the failures; the retry budget is wide
    // enough for every one of them (its default 20% is not what this test is about).
    const gw = await startGateway(
      poolConfig([flaky.url, good.url], {
        route: { retry: { attempts: 3, backoff_base_ms: 5, budget_ratio: 1 } },
        provider: { outlier: { consecutive_failures: 0 } },
      }),
    );
    try {
      const results = await runConcurrently(100, 2, () => chat(gw));
      assertAllOk(results, 'requests over a 50% failing worker');
      const lines = [...(await logLines(gw, results.map((r) => r.id))).values()];
      const retried = lines.filter((l) => l.retries > 0);
      assert.ok(retried.length > 0, 'no access log line shows retries > 0');
      for (const line of retried) {
        assert.equal(line.upstream, good.url, `retried request answered by ${line.upstream}`);
      }
      // Every retry stands for one 500 of the flaky worker: about half of its requests.
      const [flakyRequests] = await requestCounts([flaky]);
      const retries = lines.reduce((sum, l) => sum + l.retries, 0);
      const answeredByFlaky = lines.filter((l) => l.upstream === flaky.url).length;
      assert.equal(flakyRequests, answeredByFlaky + retries, 'flaky requests = answered + retried');
      assert.ok(
        retries >= 0.25 * flakyRequests && retries <= 0.75 * flakyRequests,
        `${retries} retries for ${flakyRequests} requests on a worker with --fail-rate 0.5`,
      );
    } finally {
      await gw.stop();
      await Promise.all([flaky.stop(), good.stop()]);
    }
  });

  test('a hanging worker is skipped after first_byte_ms, well before its answer', async () => {
    const [hung, good] = await Promise.all([
      startMock({ tokens: 3, latencyMs: 5000 }),
      startMock({ tokens: 3 }),
    ]);
    const gw = await startGateway(
      poolConfig([hung.url, good.url], { route: { timeouts: { first_byte_ms: 300 } } }),
    );
    try {
      const results = await runConcurrently(8, 4, () => chat(gw));
      assertAllOk(results, 'requests over a hanging worker');
      const slowest = Math.max(...results.map((r) => r.ms));
      assert.ok(slowest < 1500, `slowest request took ${slowest} ms (the hung worker: 5000 ms)`);
      const lines = await logLines(gw, results.map((r) => r.id));
      const retried = results.filter((r) => lines.get(r.id).retries > 0);
      assert.ok(retried.length > 0, 'no request was retried: the hung worker got none?');
      for (const r of retried) {
        assert.equal(lines.get(r.id).upstream, good.url);
        assert.ok(r.ms >= 280, `a retried request took ${r.ms} ms, less than first_byte_ms`);
      }
      assert.ok((await hung.stats()).requests >= 1, 'the hung worker received nothing');
    } finally {
      await gw.stop();
      await Promise.all([hung.stop(), good.stop()]);
    }
  });

  test('all workers down: 503 no_healthy_upstream, fast, in the client dialect', async () => {
    const gw = await startGateway(poolConfig([await deadUrl(), await deadUrl()]));
    try {
      // While the workers are not yet known to be down, a request tries them (connection
      // refused) and may answer 502 upstream_unreachable; once their breakers are open, 503.
      const results = [];
      for (let i = 0; i < 8; i++) results.push(await chat(gw));
      for (const r of results) {
        assert.ok(r.status === 502 || r.status === 503, `${r.status} ${r.text}`);
        assert.ok(isOpenAiError(r.json), `not an OpenAI error: ${r.text}`);
        assert.ok(r.ms < 1000, `answered after ${r.ms} ms`);
      }
      const last = results.at(-1);
      assert.equal(last.status, 503, last.text);
      assert.equal(last.json.error.code, 'no_healthy_upstream', last.text);
      assert.match(last.headers.get('content-type'), /application\/json/);

      const anthropic = await chat(gw, {
        path: '/v1/messages',
        headers: { 'anthropic-version': '2023-06-01' },
      });
      assert.equal(anthropic.status, 503, anthropic.text);
      assert.ok(anthropic.ms < 1000, `answered after ${anthropic.ms} ms`);
      assert.equal(anthropic.json?.type, 'error', anthropic.text);
      assert.equal(typeof anthropic.json.error?.type, 'string', anthropic.text);
      assert.match(anthropic.json.error.message, /no healthy upstream/, anthropic.text);
      assert.equal(anthropic.json.error.code, undefined, 'OpenAI fields in an Anthropic error');
    } finally {
      await gw.stop();
    }
  });

  test('passive breaker: a worker failing every request stops getting traffic', async () => {
    const [bad, good] = await Promise.all([
      startMock({ tokens: 3, failRate: 1, seed: 7 }),
      startMock({ tokens: 3 }),
    ]);
    const COOLDOWN_MS = 2500;
    const gw = await startGateway(
      poolConfig([bad.url, good.url], {
        route: { retry: { backoff_base_ms: 1 } },
        provider: { outlier: { consecutive_failures: 3, cooldown_ms: COOLDOWN_MS } },
      }),
    );
    try {
      const start = Date.now();
      const first = [];
      for (let i = 0; i < 30; i++) first.push(await chat(gw));
      const firstMs = Date.now() - start;
      assertAllOk(first, 'requests while the breaker opens');
      assert.ok(firstMs < COOLDOWN_MS - 500, `30 requests took ${firstMs} ms: machine too slow`);
      assert.equal((await bad.stats()).requests, 3, 'the breaker opens after 3 failures');

      // After the cool-down, one request probes the worker; it fails and the breaker reopens.
      await sleep(Math.max(0, start + COOLDOWN_MS + 200 - Date.now()));
      const second = [];
      for (let i = 0; i < 10; i++) second.push(await chat(gw));
      assertAllOk(second, 'requests after the cool-down');
      assert.equal((await bad.stats()).requests, 4, 'one probe after the cool-down, then none');
    } finally {
      await gw.stop();
      await Promise.all([bad.stop(), good.stop()]);
    }
  });

  // GET /health on the mock is recent: a binary without it answers 404 (and counts the request).
  async function mockServesHealth(mock) {
    const res = await fetchWithTimeout(`${mock.url}/health`);
    await res.arrayBuffer();
    await mock.reset();
    return res.status === 200;
  }

  // Checks every 100 ms; one result flips the verdict. The breaker is off, so that only the
  // active check can take a worker out.
  const ACTIVE_CHECKS = {
    health_check: {
      path: '/health',
      interval_ms: 100,
      timeout_ms: 200,
      healthy_threshold: 1,
      unhealthy_threshold: 1,
    },
    outlier: { consecutive_failures: 0 },
  };

  test('active health check: a killed worker is taken out before requests find it', async (t) => {
    const [victim, good] = await Promise.all([1, 2].map(() => startMock({ tokens: 3 })));
    try {
      if (!(await mockServesHealth(victim))) {
        t.skip('this sluice mock has no GET /health (the probed path): rebuild to run this');
        return;
      }
      const gw = await startGateway(
        poolConfig([victim.url, good.url], { provider: ACTIVE_CHECKS }),
      );
      try {
        const before = [];
        for (let i = 0; i < 4; i++) before.push(await chat(gw));
        assertAllOk(before, 'requests before the kill');
        assert.equal((await victim.stats()).requests, 2, 'both workers serve before the kill');

        await victim.stop('SIGKILL');
        await sleep(600); // six check intervals
        const after = [];
        for (let i = 0; i < 10; i++) after.push(await chat(gw));
        const lines = await logLines(gw, after.map((r) => r.id));
        // A request that tried the dead worker shows a retry, or its error when the retry
        // budget ran out.
        const hitDead = after.filter((r) => r.status !== 200 || lines.get(r.id).retries > 0);
        assert.equal(
          hitDead.length,
          0,
          'health checks every 100 ms should have marked the killed worker down within 600 ms, ' +
            `but ${hitDead.length} of 10 later requests still tried it, e.g. status ` +
            `${hitDead[0]?.status}, log line ${JSON.stringify(lines.get(hitDead[0]?.id))}`,
        );
        assertAllOk(after, 'requests after the kill');
      } finally {
        await gw.stop();
      }
    } finally {
      await Promise.all([victim.stop(), good.stop()]);
    }
  });

  test('active health check: a worker answering /health 503 leaves and comes back', async (t) => {
    const [sick, good] = await Promise.all([1, 2].map(() => startMock({ tokens: 3 })));
    try {
      if (!(await mockServesHealth(sick))) {
        t.skip('this sluice mock has no GET /health (the probed path): rebuild to run this');
        return;
      }
      const setHealth = async (status) => {
        const res = await postJson(`${sick.url}/mock/health`, { status });
        assert.equal(res.status, 200, `POST /mock/health: ${res.text}`);
      };
      const gw = await startGateway(poolConfig([sick.url, good.url], { provider: ACTIVE_CHECKS }));
      try {
        await setHealth(503);
        await sleep(400);
        const out = [];
        for (let i = 0; i < 10; i++) out.push(await chat(gw));
        assertAllOk(out, 'requests while /health answers 503');
        assert.equal((await sick.stats()).requests, 0, 'a worker failing its check got traffic');

        await setHealth(200);
        await sleep(400);
        const back = [];
        for (let i = 0; i < 10; i++) back.push(await chat(gw));
        assertAllOk(back, 'requests after /health recovered');
        assert.equal((await sick.stats()).requests, 5, 'the recovered worker takes its share');
      } finally {
        await gw.stop();
      }
    } finally {
      await Promise.all([sick.stop(), good.stop()]);
    }
  });

  test('consistent_hash on x-session-id keeps each session on one worker', async () => {
    const mocks = await Promise.all([1, 2, 3, 4].map(() => startMock({ tokens: 3 })));
    const gw = await startGateway(
      poolConfig(
        mocks.map((m) => m.url),
        { route: { policy: 'consistent_hash', consistent_hash: { header: 'x-session-id' } } },
      ),
    );
    try {
      // Sequential, so that the bounded-load rule never has a reason to spill: a request stops
      // counting as outstanding before the client has its whole answer, so the next one, on
      // either thread, sees no load.
      const SESSIONS = 16;
      const ROUNDS = 4;
      const sent = [];
      for (let round = 0; round < ROUNDS; round++) {
        for (let s = 0; s < SESSIONS; s++) {
          const session = `session-${s}`;
          const r = await chat(gw, { headers: { 'x-session-id': session } });
          sent.push({ ...r, session });
        }
      }
      assertAllOk(sent, 'session requests');
      const lines = await logLines(gw, sent.map((r) => r.id));
      const workersOf = new Map();
      for (const r of sent) {
        if (!workersOf.has(r.session)) workersOf.set(r.session, new Set());
        workersOf.get(r.session).add(lines.get(r.id).upstream);
      }
      for (const [session, workers] of workersOf) {
        assert.equal(workers.size, 1, `${session} landed on ${[...workers]}`);
      }
      const used = new Set([...workersOf.values()].map((w) => [...w][0]));
      assert.ok(used.size >= 2, `16 sessions all hashed to one worker: ${[...used]}`);
      // The mocks agree: each one's count is a whole number of sessions.
      for (const count of await requestCounts(mocks)) assert.equal(count % ROUNDS, 0);
    } finally {
      await gw.stop();
      await Promise.all(mocks.map((m) => m.stop()));
    }
  });

  test('cache_aware keeps each shared prefix on one worker, with balanced load', async (t) => {
    const mocks = await Promise.all(
      [1, 2, 3, 4].map(() => startMock({ tokens: 3, latencyMs: 10 })),
    );
    const urls = mocks.map((m) => m.url);
    // Two routes over the same workers: cache_aware, and round_robin for comparison.
    const gw = await startGateway({
      threads: 2,
      providers: [{ id: 'pool', type: 'openai', endpoints: urls }],
      routes: [
        {
          name: 'cache',
          models: ['cache'],
          provider: 'pool',
          policy: 'cache_aware',
          cache_aware: {
            cache_threshold: 0.5,
            balance_abs_threshold: 32,
            balance_rel_threshold: 1.1,
          },
        },
        { name: 'rr', models: ['rr'], provider: 'pool', policy: 'round_robin' },
      ],
    });
    try {
      const FAMILIES = 8;
      const PER_FAMILY = 12;
      const prefixes = Array.from(
        { length: FAMILIES },
        (_, f) => `You are assistant number ${f}. ` + fillerText(1000 + f, 3072),
      );
      // Families interleaved in a fixed shuffled order.
      const order = [];
      for (let i = 0; i < FAMILIES * PER_FAMILY; i++) order.push(i % FAMILIES);
      let state = 12345;
      for (let i = order.length - 1; i > 0; i--) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        const j = state % (i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }

      // Fraction of each family's requests on its most-used worker, averaged; and per-worker
      // request counts.
      const measure = async (model) => {
        const results = await runConcurrently(order.length, 8, (i) =>
          chat(gw, {
            model,
            messages: [
              { role: 'system', content: prefixes[order[i]] },
              { role: 'user', content: `question ${i}: what about ${fillerText(i, 40)}?` },
            ],
          }).then((r) => ({ ...r, family: order[i] })),
        );
        assertAllOk(results, `${model} requests`);
        const lines = await logLines(gw, results.map((r) => r.id));
        const perFamily = Array.from({ length: FAMILIES }, () => ({}));
        const perWorker = Object.fromEntries(urls.map((u) => [u, 0]));
        for (const r of results) {
          const upstream = lines.get(r.id).upstream;
          perFamily[r.family][upstream] = (perFamily[r.family][upstream] ?? 0) + 1;
          perWorker[upstream] += 1;
        }
        const hit =
          perFamily.reduce((sum, c) => sum + Math.max(...Object.values(c)) / PER_FAMILY, 0) /
          FAMILIES;
        return { hit, loads: urls.map((u) => perWorker[u]) };
      };

      const cache = await measure('cache');
      const rr = await measure('rr');
      const report =
        `cache_aware hit ratio ${cache.hit.toFixed(3)} (loads ${cache.loads}), ` +
        `round_robin ${rr.hit.toFixed(3)} (loads ${rr.loads})`;
      t.diagnostic(report);
      assert.ok(cache.hit > 0.8, report);
      assert.ok(rr.hit < 0.6, `the measure does not tell policies apart: ${report}`);
      // 8 families over 4 workers: every worker takes a fair part of the load.
      const total = order.length;
      for (const load of cache.loads) {
        assert.ok(load >= 0.1 * total && load <= 0.45 * total, `unbalanced: ${report}`);
      }
    } finally {
      await gw.stop();
      await Promise.all(mocks.map((m) => m.stop()));
    }
  });

  test('fallback: a route whose pool is down falls back to the next route', async () => {
    const backup = await startMock({ tokens: 3 });
    const gw = await startGateway({
      threads: 2,
      providers: [
        { id: 'down', type: 'openai', endpoints: [await deadUrl(), await deadUrl()] },
        { id: 'up', type: 'openai', endpoints: [backup.url] },
      ],
      routes: [
        { name: 'primary', models: ['*'], provider: 'down', fallback: ['backup'] },
        { name: 'backup', models: ['backup-only'], provider: 'up' },
      ],
    });
    try {
      const results = [];
      for (let i = 0; i < 5; i++) results.push(await chat(gw, { model: 'primary-model' }));
      assertAllOk(results, 'requests to the route whose pool is down');
      for (const r of results) assert.ok(r.ms < 2000, `answered after ${r.ms} ms`);
      assert.equal((await backup.stats()).requests, results.length);
      const lines = await logLines(gw, results.map((r) => r.id));
      for (const r of results) assert.equal(lines.get(r.id).upstream, backup.url);
    } finally {
      await gw.stop();
      await backup.stop();
    }
  });

  test('timeouts.total_ms: a slow pool answers 504 at the deadline', async () => {
    const slow = await Promise.all([1, 2].map(() => startMock({ tokens: 3, latencyMs: 5000 })));
    const gw = await startGateway(
      poolConfig(
        slow.map((m) => m.url),
        { route: { timeouts: { total_ms: 300 } } },
      ),
    );
    try {
      const r = await chat(gw);
      assert.equal(r.status, 504, r.text);
      assert.ok(isOpenAiError(r.json), `not an OpenAI error: ${r.text}`);
      assert.equal(r.json.error.code, 'upstream_timeout', r.text);
      assert.ok(r.ms >= 250 && r.ms < 1000, `answered after ${r.ms} ms (total_ms 300)`);
    } finally {
      await gw.stop();
      await Promise.all(slow.map((m) => m.stop()));
    }
  });
});
