// Plugins that fail: a callback that never returns (deadline), a trap, a memory bomb, malformed
// header maps, and modules that cannot load. Each failure costs at most its own request (503 with
// fail_closed, skipped with fail_open) and the gateway keeps serving.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  REPO,
  RawConnection,
  fetchWithTimeout,
  freePort,
  isOpenAiError,
  postJson,
  rawPost,
  runSluice,
  simpleConfig,
  startGateway,
  startMock,
  writeConfig,
} from './lib/harness.js';

const TEST_WASM_DIR = process.env.SLUICE_TEST_WASM_DIR || path.join(REPO, 'build', 'tests', 'wasm');
const testModule = (name) => path.join(TEST_WASM_DIR, `${name}.wasm`);

const CHAT = { messages: [{ role: 'user', content: 'hi' }] };

async function chat(gw, model) {
  const start = Date.now();
  const result = await postJson(`${gw.url}/v1/chat/completions`, { model, ...CHAT });
  return { ...result, ms: Date.now() - start };
}

// One request on a connection of its own, so that successive ones reach both worker threads.
async function chatOnNewConnection(gw, model) {
  const conn = await RawConnection.open(gw.port);
  try {
    const res = await conn.request(
      rawPost('/v1/chat/completions', { model, ...CHAT }, { Connection: 'close' }),
    );
    assert.ok(res, 'the gateway closed the connection without an answer');
    return res;
  } finally {
    conn.close();
  }
}

function assertStatus(result, status) {
  assert.equal(result.status, status, `expected ${status}, got ${result.status}: ${result.text}`);
}

function assertPluginFailed(result, name, why) {
  assertStatus(result, 503);
  assert.ok(isOpenAiError(result.json), result.text);
  assert.equal(result.json.error.type, 'plugin_error');
  assert.equal(result.json.error.code, 'plugin_failed');
  assert.match(result.json.error.message, new RegExp(`^plugin ${name} failed: .*${why}`));
}

async function assertStillServing(gw) {
  const health = await fetchWithTimeout(`${gw.url}/health`, {}, 2000);
  assert.equal(health.status, 200);
  await health.arrayBuffer();
  assertStatus(await chat(gw, 'plain-model'), 200);
}

// ---------------------------------------------------------------------------------------------

describe('failing plugins', { timeout: 60_000 }, () => {
  let mock;
  let gw;

  before(async () => {
    mock = await startMock({ tokens: 3 });
    const at = (route, extra) => ({ attach: [route], ...extra });
    gw = await startGateway({
      ...simpleConfig([mock]),
      threads: 2,
      routes: [
        { name: 'loop_closed', models: ['loop-closed'], provider: 'mock' },
        { name: 'loop_open', models: ['loop-open'], provider: 'mock' },
        { name: 'trap_closed', models: ['trap-closed'], provider: 'mock' },
        { name: 'trap_open', models: ['trap-open'], provider: 'mock' },
        { name: 'bad_map', models: ['bad-map'], provider: 'mock' },
        { name: 'deep', models: ['deep'], provider: 'mock' },
        { name: 'oob', models: ['oob'], provider: 'mock' },
        { name: 'plain', models: ['*'], provider: 'mock' },
      ],
      plugins: [
        {
          name: 'loop_closed',
          path: testModule('infinite_loop'),
          ...at('loop_closed', { failure_policy: 'fail_closed', limits: { deadline_ms: 50 } }),
        },
        {
          name: 'loop_open',
          path: testModule('infinite_loop'),
          ...at('loop_open', { failure_policy: 'fail_open', limits: { deadline_ms: 50 } }),
        },
        {
          name: 'trap_closed',
          path: testModule('trap'),
          ...at('trap_closed', { failure_policy: 'fail_closed' }),
        },
        {
          name: 'trap_open',
          path: testModule('trap'),
          ...at('trap_open', { failure_policy: 'fail_open' }),
        },
        { name: 'bad_map', path: testModule('bad_header_map'), ...at('bad_map', {}) },
        { name: 'deep', path: testModule('stack_overflow'), ...at('deep', {}) },
        { name: 'oob', path: testModule('out_of_bounds'), ...at('oob', {}) },
      ],
    });
  });

  after(async () => {
    await gw?.stop();
  });

  test('a callback that never returns: 503 at its deadline (fail_closed), then again', async () => {
    for (let i = 0; i < 3; i++) {
      const result = await chat(gw, 'loop-closed');
      assertPluginFailed(result, 'loop_closed', 'deadline');
      assert.ok(result.ms < 2000, `request ${i} took ${result.ms} ms`);
    }
    // Both worker threads, at once.
    const start = Date.now();
    const results = await Promise.all(
      Array.from({ length: 4 }, () => chatOnNewConnection(gw, 'loop-closed')),
    );
    for (const result of results) assertPluginFailed(result, 'loop_closed', '');
    assert.ok(Date.now() - start < 2000, `4 requests took ${Date.now() - start} ms`);
    await assertStillServing(gw);
  });

  test('a callback that never returns is skipped with fail_open: 200, then again', async () => {
    for (let i = 0; i < 3; i++) {
      const result = await chat(gw, 'loop-open');
      assertStatus(result, 200);
      assert.ok(result.ms < 2000, `request ${i} took ${result.ms} ms`);
    }
    const results = await Promise.all(
      Array.from({ length: 4 }, () => chatOnNewConnection(gw, 'loop-open')),
    );
    for (const result of results) assertStatus(result, 200);
    await assertStillServing(gw);
  });

  test('a trap is 503 with fail_closed, every time', async () => {
    for (let i = 0; i < 3; i++) {
      assertPluginFailed(await chat(gw, 'trap-closed'), 'trap_closed', 'trapped');
    }
    await assertStillServing(gw);
  });

  test('a trap is skipped with fail_open: 200', async () => {
    for (let i = 0; i < 3; i++) assertStatus(await chat(gw, 'trap-open'), 200);
    await assertStillServing(gw);
    const line = await gw.waitForLog((l) => l.model === 'trap-open');
    assert.match(line.plugin_actions, /fail_open:trap_open/);
  });

  test('malformed header maps are refused by the host; the request is served', async () => {
    // The module traps (so fail_closed would answer 503) if the host accepts any of them.
    for (let i = 0; i < 3; i++) assertStatus(await chat(gw, 'bad-map'), 200);
    const results = await Promise.all(
      Array.from({ length: 4 }, () => chatOnNewConnection(gw, 'bad-map')),
    );
    for (const result of results) assertStatus(result, 200);
  });

  test('unbounded recursion is a trap at V8\'s stack limit: 503, on both threads', async () => {
    assertPluginFailed(await chat(gw, 'deep'), 'deep', 'trapped');
    const results = await Promise.all(
      Array.from({ length: 4 }, () => chatOnNewConnection(gw, 'deep')),
    );
    for (const result of results) assertPluginFailed(result, 'deep', '');
    await assertStillServing(gw);
  });

  test('a read outside linear memory is a trap: 503, and the gateway keeps serving', async () => {
    for (let i = 0; i < 3; i++) assertPluginFailed(await chat(gw, 'oob'), 'oob', 'trapped');
    await assertStillServing(gw);
  });

  test('the failures are logged with the plugin name', () => {
    assert.match(gw.stderr, /plugin loop_closed: proxy_on_request_headers exceeded its deadline/);
    assert.match(gw.stderr, /plugin trap_closed: proxy_on_request_headers trapped/);
  });
});

// ---------------------------------------------------------------------------------------------

// Linear memories of the V8 wasm instances in `pid`, in bytes. V8 reserves each one (with guard
// regions) as a block of several GiB whose accessible start is read-write: in /proc/PID/maps a
// rw-p mapping immediately followed by a ---p one, together at least 4 GiB.
function wasmMemories(pid) {
  const maps = fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [range, perms] = line.split(/\s+/);
      const [start, end] = range.split('-').map((x) => BigInt(`0x${x}`));
      return { start, end, perms };
    });
  const memories = [];
  for (let i = 0; i + 1 < maps.length; i++) {
    const [rw, rest] = [maps[i], maps[i + 1]];
    if (!rw.perms.startsWith('rw') || !rest.perms.startsWith('---') || rw.end !== rest.start) {
      continue;
    }
    if (rest.end - rw.start >= 4n << 30n) memories.push(Number(rw.end - rw.start));
  }
  return memories;
}

function rssBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)[1]) * 1024;
}

describe('memory bomb', { timeout: 60_000 }, () => {
  const MiB = 1024 * 1024;
  let gw;

  before(async () => {
    const mock = await startMock({ tokens: 3 });
    gw = await startGateway({
      ...simpleConfig([mock]),
      threads: 2,
      plugins: [
        {
          name: 'bomb',
          path: testModule('memory_bomb'),
          failure_policy: 'fail_closed',
          limits: { max_memory_mb: 16 },
        },
      ],
    });
  });

  after(async () => {
    await gw?.stop();
  });

  test('with max_memory_mb: 16 requests complete and memory stays bounded', async () => {
    const rssBefore = rssBytes(gw.pid);
    for (let i = 0; i < 4; i++) {
      const result = await chat(gw, 'gpt-4o');
      assertStatus(result, 200);
      assert.ok(result.ms < 2000, `request ${i} took ${result.ms} ms`);
    }
    const results = await Promise.all(
      Array.from({ length: 8 }, () => chatOnNewConnection(gw, 'gpt-4o')),
    );
    for (const result of results) assertStatus(result, 200);

    const grown = rssBytes(gw.pid) - rssBefore;
    assert.ok(grown < 100 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB`);

    // RSS alone cannot tell: grown wasm memory is not touched, so it is not resident. The
    // accessible size of each instance's linear memory shows the cap itself.
    const memories = wasmMemories(gw.pid);
    const described = memories.map((m) => `${(m / MiB).toFixed(3)} MiB`).join(', ');
    assert.ok(memories.length > 0, 'no wasm linear memory found in /proc/PID/maps');
    assert.ok(
      memories.some((m) => m >= 8 * MiB),
      `the bomb did not grow its memory (linear memories: ${described})`,
    );
    // Under AddressSanitizer its allocator's own regions look like linear memories in the maps
    // (the cap is also checked by the engine's unit tests, which need no maps).
    if (!process.env.SLUICE_SANITIZED) {
      for (const size of memories) {
        assert.ok(size <= 16 * MiB, `a linear memory exceeds max_memory_mb 16: ${described}`);
      }
    }
    await assertStillServing(gw);
  });

  // V8 does not act on TerminateExecution while a loop keeps calling memory.grow: the callback
  // runs until the memory cap ends the loop (about 1 s for 1 GiB), so the cap bounds the stall.
  // A call that returns after its deadline still counts as a deadline miss.
  test(
    'a callback growing memory in a loop past its deadline is a deadline miss',
    async () => {
      const mock = await startMock({ tokens: 3 });
      const big = await startGateway({
        ...simpleConfig([mock]),
        threads: 1,
        plugins: [
          {
            name: 'big_bomb',
            path: testModule('memory_bomb'),
            failure_policy: 'fail_closed',
            limits: { max_memory_mb: 1024, deadline_ms: 50 },
          },
        ],
      });
      try {
        const result = await chat(big, 'gpt-4o');
        assertPluginFailed(result, 'big_bomb', 'deadline');
        assert.ok(result.ms < 5000, `the request took ${result.ms} ms with a 1 GiB cap`);
      } finally {
        await Promise.all([big.stop(), mock.stop()]);
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------

describe('plugins that cannot load', { timeout: 60_000 }, () => {
  let mock;
  let dir;
  const files = {};

  before(async () => {
    mock = await startMock({ tokens: 3 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-plugins-'));
    files.notWasm = path.join(dir, 'random.wasm');
    fs.writeFileSync(files.notWasm, Buffer.concat([Buffer.from('junk'), randomBytes(4096)]));
    files.badWasm = path.join(dir, 'truncated.wasm');
    // A wasm header, then a type section that claims more bytes than the file has.
    fs.writeFileSync(
      files.badWasm,
      Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0x03]),
    );
    files.missing = path.join(dir, 'missing.wasm');
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const CASES = [
    {
      what: 'a module without a proxy_abi_version export',
      file: () => testModule('no_abi'),
      why: /proxy_abi_version/,
    },
    {
      what: 'a file that is not WebAssembly',
      file: () => files.notWasm,
      why: /not a WebAssembly module/,
    },
    { what: 'a malformed WebAssembly module', file: () => files.badWasm, why: /\S/ },
    { what: 'a missing file', file: () => files.missing, why: /cannot read/ },
  ];

  function config(file, failurePolicy) {
    return {
      ...simpleConfig([mock]),
      threads: 1,
      plugins: [{ name: 'broken', path: file, failure_policy: failurePolicy }],
    };
  }

  for (const { what, file, why } of CASES) {
    test(`${what}: fail_closed refuses to start, naming the plugin and the reason`, async () => {
      const port = await freePort();
      const configPath = writeConfig(config(file(), 'fail_closed'), { port });
      const result = runSluice(['run', '--config', configPath], { timeoutMs: 5000 });
      assert.equal(
        result.code,
        1,
        `exit code ${result.code} (signal ${result.signal})\n${result.stderr}`,
      );
      const line = result.stderr.split('\n').find((l) => l.includes('plugin broken'));
      assert.ok(line, `stderr does not name the plugin:\n${result.stderr}`);
      assert.ok(line.includes(file()), `the message does not name the file: ${line}`);
      assert.match(line.slice(line.indexOf(file()) + file().length), why);
      assert.match(line, /fail_closed/);
    });
  }

  test('with fail_open the gateway starts without them and serves', async () => {
    const gw = await startGateway({
      ...simpleConfig([mock]),
      threads: 1,
      plugins: CASES.map(({ file }, i) => ({
        name: `broken${i}`,
        path: file(),
        failure_policy: 'fail_open',
      })),
    });
    try {
      assertStatus(await chat(gw, 'gpt-4o'), 200);
      for (let i = 0; i < CASES.length; i++) {
        assert.match(gw.stderr, new RegExp(`plugin broken${i} \\(.*fail_open: skipped`));
      }
    } finally {
      await gw.stop();
    }
  });
});
