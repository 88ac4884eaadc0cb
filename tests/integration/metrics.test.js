// GET /metrics: valid exposition text, and the gateway's series move by what requests did.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { fetchWithTimeout, freePort, postJson, readSse, startGateway, startMock } from './lib/harness.js';
import { parsePrometheus, sampleValue } from './lib/prometheus.js';

const ADMIN = 'admin-token-for-metrics-012345';
const KEY = 'sk-metrics-0123456789abcdef';

describe('metrics', () => {
  const started = [];
  after(async () => {
    await Promise.all(started.map((p) => p.stop()));
  });

  test('series move by the expected amounts; admin and client listeners agree', async () => {
    const mock = await startMock({ tokens: 7 });
    const adminPort = await freePort();
    const gateway = await startGateway({
      threads: 2,
      admin: { listen: `127.0.0.1:${adminPort}`, token: ADMIN },
      keys: [{ id: 'm-key', key: KEY, rpm: 4 }],
      providers: [{ id: 'mock', type: 'openai', endpoints: [mock.url] }],
      routes: [{ name: 'chat', models: ['*'], provider: 'mock' }],
    });
    started.push(mock, gateway);
    const scrape = async () => {
      const res = await fetchWithTimeout(`http://127.0.0.1:${adminPort}/metrics`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
      return parsePrometheus(await res.text());  // throws on malformed exposition text
    };
    const value = (samples, name, labels) => sampleValue(samples, name, labels) ?? 0;
    const before = await scrape();
    const ok = { route: 'chat', model: 'm1', provider: 'mock', status: '200' };

    const headers = { authorization: `Bearer ${KEY}` };
    const body = { model: 'm1', messages: [{ role: 'user', content: 'hello' }] };
    for (let i = 0; i < 2; i++) {
      assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, body, { headers })).status, 200);
    }
    const res = await fetchWithTimeout(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, stream: true }),
    });
    let chunks = 0;
    for await (const event of readSse(res)) {
      if (event.data !== '[DONE]') {
        chunks++;
        assert.equal(JSON.parse(event.data).usage ?? null, null, 'usage chunk the client did not ask for');
      }
    }
    assert.ok(chunks >= 7);
    assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, body, { headers })).status, 200);
    const limited = await postJson(`${gateway.url}/v1/chat/completions`, body, { headers });
    assert.equal(limited.status, 429);

    const afterward = await scrape();
    const moved = (name, labels) => value(afterward, name, labels) - value(before, name, labels);
    assert.equal(moved('sluice_requests_total', ok), 4);
    assert.equal(moved('sluice_ratelimit_decisions_total', { decision: 'allowed' }), 4);
    assert.equal(moved('sluice_ratelimit_decisions_total', { decision: 'rejected' }), 1);
    assert.equal(moved('sluice_request_duration_seconds_count', { route: 'chat' }), 5);
    assert.equal(moved('sluice_time_to_first_token_seconds_count', { route: 'chat' }), 4);
    assert.ok(moved('sluice_inter_token_seconds_count', { route: 'chat' }) >= 6);
    // Every answer reported 7 output tokens, the stream included.
    assert.equal(moved('sluice_tokens_total', { model: 'm1', key: 'm-key', kind: 'output' }), 28);
    assert.ok(moved('sluice_tokens_total', { model: 'm1', key: 'm-key', kind: 'input' }) > 0);
    assert.equal(value(afterward, 'sluice_requests_in_flight', {}), 0);  // the admin scrape is not a request
    const attempts = (samples) =>
      samples.filter((s) => s.name === 'sluice_upstream_attempts_total').reduce((a, s) => a + s.value, 0);
    assert.equal(attempts(afterward) - attempts(before), 4);

    // The client listener shows the same series (the scrape there counts itself).
    const client = parsePrometheus(await (await fetchWithTimeout(`${gateway.url}/metrics`)).text());
    assert.equal(value(client, 'sluice_requests_total', ok), value(afterward, 'sluice_requests_total', ok));
    // Secrets never appear.
    const text = await (
      await fetchWithTimeout(`http://127.0.0.1:${adminPort}/metrics`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      })
    ).text();
    assert.ok(!text.includes(KEY) && !text.includes(ADMIN));
  });
});
