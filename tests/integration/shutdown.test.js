// SIGTERM drains: the listener closes at once, requests in flight finish (up to
// timeouts.drain_ms), then the process exits 0.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import {
  chunkContent,
  connectionRefused,
  fetchWithTimeout,
  mockText,
  readSse,
  simpleConfig,
  startGateway,
  startMock,
  waitFor,
} from './lib/harness.js';

async function openStream(gw, tokens, delayMs) {
  const res = await fetchWithTimeout(
    `${gw.url}/v1/chat/completions`,
    {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-mock-tokens': String(tokens),
        'x-mock-token-delay-ms': String(delayMs),
      },
      body: JSON.stringify({
        model: 'drain',
        messages: [{ role: 'user', content: 'hi' }],
        stream: true,
      }),
    },
    30_000,
  );
  assert.equal(res.status, 200);
  return res;
}

describe('shutdown', { timeout: 60_000 }, () => {
  let mock;

  before(async () => {
    mock = await startMock({ tokens: 3 });
  });

  test('SIGTERM lets a running stream finish, refuses new connections, then exits 0', async () => {
    const gw = await startGateway(simpleConfig([mock]));
    let exitedAt;
    gw.exited.then(() => {
      exitedAt = Date.now();
    });

    const res = await openStream(gw, 20, 50);
    const events = [];
    let termAt;
    let refusedAt;
    let refusedCheck;
    for await (const event of readSse(res)) {
      events.push({ ...event, at: Date.now() });
      if (!termAt && chunkContent(event.data)) {
        termAt = Date.now();
        gw.signal('SIGTERM');
        refusedCheck = waitFor(() => connectionRefused(gw.port, 200), {
          timeoutMs: 1000,
          intervalMs: 20,
          what: 'new connections to be refused after SIGTERM',
        }).then(() => {
          refusedAt = Date.now();
        });
      }
    }
    await refusedCheck;
    const doneAt = events.at(-1).at;

    assert.equal(events.at(-1).data, '[DONE]', 'the stream ran to its end');
    assert.equal(
      events
        .slice(0, -1)
        .map((e) => chunkContent(e.data))
        .join(''),
      mockText(20),
    );
    assert.ok(refusedAt - termAt < 1000, `refused ${refusedAt - termAt} ms after SIGTERM`);
    assert.ok(refusedAt < doneAt, 'the listener closed while the stream was still running');

    const { code, signal } = await gw.exited;
    assert.equal(signal, null, gw.stderr);
    assert.equal(code, 0, gw.stderr);
    assert.ok(exitedAt >= doneAt - 50, 'the process waited for the stream');
    assert.ok(exitedAt - doneAt < 2000, `exited ${exitedAt - doneAt} ms after the stream ended`);
  });

  test('an idle gateway exits 0 promptly on SIGTERM', async () => {
    const gw = await startGateway(simpleConfig([mock]));
    const start = Date.now();
    gw.signal('SIGTERM');
    const { code, signal } = await gw.exited;
    assert.equal(signal, null, gw.stderr);
    assert.equal(code, 0, gw.stderr);
    assert.ok(Date.now() - start < 2000, `took ${Date.now() - start} ms`);
  });

  test('timeouts.drain_ms bounds how long a draining stream is waited for', async () => {
    const gw = await startGateway(simpleConfig([mock], { timeouts: { drain_ms: 500 } }));
    let exitedAt;
    gw.exited.then(() => {
      exitedAt = Date.now();
    });
    const res = await openStream(gw, 200, 50); // 10 s of tokens
    const events = [];
    let termAt;
    try {
      for await (const event of readSse(res)) {
        events.push(event);
        if (!termAt && chunkContent(event.data)) {
          termAt = Date.now();
          gw.signal('SIGTERM');
        }
      }
    } catch {
      // the gateway may reset the connection when the drain time is up
    }
    const { signal } = await gw.exited;
    const took = exitedAt - termAt;
    assert.equal(signal, null, gw.stderr);
    assert.ok(took >= 400 && took < 3000, `exited ${took} ms after SIGTERM`);
    assert.notEqual(events.at(-1)?.data, '[DONE]', 'the stream was cut, not finished');
  });
});
