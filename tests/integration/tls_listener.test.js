// TLS on the client listener (`tls.cert`, `tls.key`): requests, streams and keep-alive over
// HTTPS, a client that leaves mid-stream, plain HTTP refused, and certificate errors at start.
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';

import {
  chunkContent,
  freePort,
  httpsRequest,
  makeCertificates,
  mockText,
  runSluice,
  simpleConfig,
  startGateway,
  startMock,
  waitFor,
  writeConfig,
} from './lib/harness.js';

const CHAT = { model: 'mock-model', messages: [{ role: 'user', content: 'hi' }] };

// POST over HTTPS with `agent`; resolves with the response once its head arrived.
function postOver(agent, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = https.request(
      {
        agent,
        host: '127.0.0.1',
        port: target.port,
        servername: 'localhost',
        path: target.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        timeout: 5000,
      },
      (res) => resolve({ res, reused: request.reusedSocket }),
    );
    request.on('timeout', () => request.destroy(new Error('HTTPS request timed out')));
    request.on('error', reject);
    request.end(JSON.stringify(body));
  });
}

async function readAll(res) {
  let text = '';
  res.setEncoding('utf8');
  for await (const piece of res) text += piece;
  return text;
}

describe('TLS on the client listener', { timeout: 60_000 }, () => {
  let pki;
  let mock;
  let gw;
  let agent;

  before(async () => {
    pki = makeCertificates({ gateway: ['DNS:localhost', 'IP:127.0.0.1'] });
    mock = await startMock({ tokens: 12 });
    gw = await startGateway(
      simpleConfig([mock], { tls: { cert: pki.gateway.cert, key: pki.gateway.key } }),
      {},
      { ca: pki.ca },
    );
    agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca });
  });

  after(() => agent?.destroy());

  test('answers a chat completion over HTTPS and keeps the connection alive', async () => {
    for (let i = 0; i < 3; i++) {
      const { res, reused } = await postOver(agent, `${gw.url}/v1/chat/completions`, CHAT);
      const body = JSON.parse(await readAll(res));
      assert.equal(res.statusCode, 200);
      assert.equal(body.choices[0].message.content, mockText(12));
      assert.equal(reused, i > 0, `request ${i} ${i > 0 ? 'reused' : 'opened'} a connection`);
    }
  });

  test('relays a stream event by event over HTTPS', async () => {
    const { res } = await postOver(agent, `${gw.url}/v1/chat/completions`, {
      ...CHAT,
      stream: true,
    });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'], /text\/event-stream/);
    const events = (await readAll(res))
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(events.slice(0, -1).map(chunkContent).join(''), mockText(12));
  });

  test('a client that leaves mid-stream cancels the upstream request', async () => {
    await mock.reset();
    const before = await mock.stats();
    const { res } = await postOver(
      new https.Agent({ ca: pki.ca }),
      `${gw.url}/v1/chat/completions`,
      { ...CHAT, stream: true },
      { 'x-mock-tokens': '200', 'x-mock-token-delay-ms': '50' },
    );
    assert.equal(res.statusCode, 200);
    await new Promise((resolve) => {
      let seen = '';
      res.setEncoding('utf8');
      res.on('data', (piece) => {
        seen += piece;
        if ((seen.match(/tok/g) ?? []).length >= 3) {
          res.destroy();
          resolve();
        }
      });
    });
    const stats = await waitFor(
      async () => {
        const s = await mock.stats();
        return s.streams_cancelled > before.streams_cancelled && s.active_streams === 0 && s;
      },
      { timeoutMs: 2000, what: 'the mock to see its stream cancelled' },
    );
    assert.equal(stats.streams_completed, before.streams_completed);
  });

  test('a plain HTTP request gets no answer and the listener keeps serving HTTPS', async () => {
    await assert.rejects(
      fetch(`http://127.0.0.1:${gw.port}/health`, { signal: AbortSignal.timeout(5000) }),
      (err) => err.name === 'TypeError', // the connection closed without an HTTP answer
    );
    const health = await httpsRequest(`${gw.url}/health`, { ca: pki.ca });
    assert.equal(health.status, 200);
  });

  test('a client that never finishes its handshake is closed after client_read_ms', async () => {
    const slow = await startGateway(
      simpleConfig([mock], {
        tls: { cert: pki.gateway.cert, key: pki.gateway.key },
        timeouts: { client_read_ms: 300 },
      }),
      {},
      { ca: pki.ca },
    );
    const net = await import('node:net');
    const socket = net.connect(slow.port, '127.0.0.1');
    const closedAfter = await new Promise((resolve, reject) => {
      const start = Date.now();
      socket.on('connect', () => socket.write('\x16\x03\x01')); // a partial ClientHello
      socket.on('close', () => resolve(Date.now() - start));
      socket.on('error', () => {});
      setTimeout(() => reject(new Error('not closed within 5 s')), 5000);
    });
    assert.ok(closedAfter >= 250 && closedAfter < 3000, `closed after ${closedAfter} ms`);
    await slow.stop();
  });
});

describe('TLS settings', { timeout: 30_000 }, () => {
  let pki;
  before(() => {
    pki = makeCertificates({ one: ['DNS:localhost'], two: ['DNS:localhost'] });
  });

  const checkConfig = (tls) =>
    runSluice(['check', '--config', writeConfig(simpleConfig([{ url: 'http://127.0.0.1:1' }], { tls }))]);

  test('a missing file is named with its key', () => {
    const result = checkConfig({ cert: '/nonexistent/cert.pem', key: pki.one.key });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /tls\.cert: cannot read "\/nonexistent\/cert\.pem"/);
  });

  test('cert without key is refused', () => {
    const result = checkConfig({ cert: pki.one.cert });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /tls\.key: required/);
  });

  test('a key that does not belong to the certificate stops the start', async () => {
    const port = await freePort();
    const config = simpleConfig([{ url: 'http://127.0.0.1:1' }], {
      listen: `127.0.0.1:${port}`,
      tls: { cert: pki.one.cert, key: pki.two.key },
    });
    const result = runSluice(['run', '--config', writeConfig(config)]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /tls\.key: cannot load ".*two\.key"/);
  });
});
