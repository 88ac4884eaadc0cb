// The soak of issue 9: SOAK_SECONDS (default 600) of mixed load on one gateway while its workers
// are removed and added back, mock upstreams are killed or restarted, and plugins are replaced,
// deployed and removed. Then: the gateway must still run and exit cleanly on SIGTERM, its RSS
// must be flat after warm-up, and every request the client sent must have had a complete
// answer, found exactly once with the same status in the access log and counted in
// sluice_requests_total. Any failed check fails the run (exit status 1).
//
//   SLUICE_BIN=build/sluice node tests/soak/soak.mjs        (what `make soak` runs)
//
// Environment: SOAK_SECONDS, SLUICE_BIN, SLUICE_PLUGIN_DIR, SOAK_OUT (where results.json goes;
// default soak/ next to SLUICE_BIN). Node built-ins and the integration tests' helpers only; the
// run is one node:test test so that the helpers' clean-up hooks kill every child process.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  SLUICE_BIN,
  adminRequest,
  freePort,
  pluginPath as harnessPluginPath,
  readSse,
  startGateway,
  startMock,
  waitFor,
} from '../integration/lib/harness.js';
import { parsePrometheus, selectSamples } from '../integration/lib/prometheus.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const OUT_DIR = process.env.SOAK_OUT || path.join(path.dirname(SLUICE_BIN), 'soak');
const ADMIN_TOKEN = 'soak-admin-token-0123456789abcdef';
const KEYS = ['soak-client-key-a-0123456789', 'soak-client-key-b-0123456789'];
const DENIED_PHRASE = 'soak forbidden phrase';
// Longer than this is a hang: answers take milliseconds, streams well under a second.
const REQUEST_TIMEOUT_MS = 30_000;
// Shorter runs (the ctest smoke run) report RSS without judging it: their quarters fall inside
// warm-up. Nor is it judged under ASan (SLUICE_SANITIZED), whose quarantine holds freed memory.
const MIN_SECONDS_FOR_RSS = 120;
const SANITIZED = Boolean(process.env.SLUICE_SANITIZED);
// How much RSS may grow from the mean of the run's second quarter to the mean of its last one.
// Without a leak it wobbles by a few MiB (3 between tenths of a 10-minute run): allocators
// keep freed memory, and each plugin change builds new V8 instances on both threads before the
// old ones go. The two means are 300 s apart in a 10-minute run, about 55,000 requests and 60
// plugin changes: a leak of 200 bytes per request, or of one V8 instance per change, exceeds it.
const RSS_TOLERANCE = { ratio: 0.1, bytes: 8 * 1024 * 1024 };

// Absolute: wasm.module_roots must be, and SLUICE_PLUGIN_DIR may be relative (make soak).
const pluginPath = (name) => path.resolve(harnessPluginPath(name));
const rand = (n) => Math.floor(Math.random() * n);
const pick = (list) => list[rand(list.length)];
const sum = (values) => values.reduce((a, b) => a + b, 0);
const mib = (bytes) => (bytes / 1048576).toFixed(1);
const parseJson = (text) => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

// -----------------------------------------------------------------------------------------------
// The system under test: three mock upstreams and the gateway.

// a and b stream (tokens 10 ms apart); c answers after 20 ms and gets only plain requests, so
// that killing it outright can never cut a stream already under way.
const MOCK_OPTIONS = {
  a: { tokens: 16, tokenDelayMs: 10 },
  b: { tokens: 16, tokenDelayMs: 10 },
  c: { tokens: 16, latencyMs: 20 },
};
const PROVIDER_OF = { a: 'steady', b: 'steady', c: 'flaky' };

async function startSystem(workDir) {
  const mocks = {};
  for (const [name, opts] of Object.entries(MOCK_OPTIONS)) mocks[name] = await startMock(opts);
  const healthCheck = {
    path: '/health',
    interval_ms: 1000,
    timeout_ms: 500,
    healthy_threshold: 1,
    unhealthy_threshold: 2,
  };
  // A budget large enough for every request that meets a dead worker to try another one.
  const retry = {
    attempts: 3,
    backoff_base_ms: 10,
    backoff_max_ms: 200,
    budget_ratio: 0.5,
    min_retries_per_second: 50,
  };
  const adminPort = await freePort();
  const accessLog = path.join(workDir, 'access.log');
  const gateway = await startGateway({
    threads: 2,
    access_log: accessLog,
    log_level: 'warn',
    state_dir: path.join(workDir, 'state'),
    admin: { listen: `127.0.0.1:${adminPort}`, token: ADMIN_TOKEN },
    wasm: { module_roots: [path.dirname(pluginPath('logging'))] },
    providers: [
      {
        id: 'steady',
        type: 'openai',
        endpoints: [mocks.a.url, mocks.b.url],
        health_check: healthCheck,
      },
      { id: 'flaky', type: 'openai', endpoints: [mocks.c.url], health_check: healthCheck },
    ],
    routes: [
      { name: 'stream', models: ['soak-stream'], provider: 'steady', retry },
      {
        name: 'plain',
        models: ['soak-plain'],
        targets: [{ provider: 'steady' }, { provider: 'flaky' }],
        policy: 'power_of_two',
        retry,
      },
    ],
    // Limits far above the load: every request still goes through admission and settlement.
    keys: KEYS.map((key, i) => ({ id: `soak-${i}`, key, rpm: 1_000_000, tpm: 1_000_000_000 })),
    timeouts: { first_byte_ms: 10_000, idle_ms: 10_000 },
    plugins: [
      { name: 'logging', path: pluginPath('logging') },
      { name: 'guard', path: pluginPath('prompt_guard'), config: { deny: [DENIED_PHRASE] } },
    ],
  });
  gateway.adminUrl = `http://127.0.0.1:${adminPort}`;
  return { mocks, gateway, accessLog };
}

// -----------------------------------------------------------------------------------------------
// The client: each request carries a unique x-request-id and is recorded with its outcome
// ({ id, kind, status, error, text | events, version }).

function makeClient(gateway) {
  const requests = [];
  let sequence = 0;

  async function send(kind, { method = 'POST', target, headers = {}, body, sse = false }) {
    const id = `soak-${kind}-${++sequence}`;
    const record = { id, kind, status: 0 };
    requests.push(record);
    try {
      const res = await fetch(`${gateway.url}${target}`, {
        method,
        headers: { 'x-request-id': id, 'content-type': 'application/json', ...headers },
        body: body === undefined || typeof body === 'string' ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      record.status = res.status;
      record.version = res.headers.get('x-plugin-version');
      if (res.headers.get('x-request-id') !== id) {
        record.problem = `x-request-id came back as ${res.headers.get('x-request-id')}`;
      }
      if (sse && res.status === 200) {
        record.events = [];
        for await (const event of readSse(res)) record.events.push(event.event ?? event.data);
      } else {
        record.text = await res.text();
      }
    } catch (err) {
      // A reset, a body cut short or a timeout: the answer was not complete.
      const cause = err.cause?.code ?? err.cause?.message ?? '';
      record.error = err.name === 'TimeoutError' ? 'timeout' : `${err.message} ${cause}`.trim();
    }
    return record;
  }

  const bearer = () => ({ authorization: `Bearer ${pick(KEYS)}` });
  const anthropic = () => ({ 'x-api-key': pick(KEYS), 'anthropic-version': '2023-06-01' });
  const tokens = (low, high) => ({ 'x-mock-tokens': String(low + rand(high - low + 1)) });
  const chat = (model, extra = {}) => ({
    model,
    messages: [
      { role: 'system', content: 'You are the soak test.' },
      { role: 'user', content: `question ${sequence}` },
    ],
    ...extra,
  });
  const messages = (model, extra = {}) => ({
    model,
    max_tokens: 64,
    messages: [{ role: 'user', content: `question ${sequence}` }],
    ...extra,
  });

  // Each kind: how to send it, the status it expects and what else its answer must show (a
  // problem, or nothing). `routed` kinds reach an upstream; they may also get a gateway error
  // in the client's dialect (502/503/504), which is counted and reported.
  const kinds = {
    chat: {
      routed: true,
      send: () => send('chat', {
        target: '/v1/chat/completions',
        headers: { ...bearer(), ...tokens(1, 40) },
        body: chat('soak-plain'),
      }),
      expect: 200,
      check: (r) => (JSON.parse(r.text).choices[0].message.content ? undefined : 'no content'),
    },
    messages: {
      routed: true,
      anthropic: true,
      send: () => send('messages', {
        target: '/v1/messages',
        headers: { ...anthropic(), ...tokens(1, 40) },
        body: messages('soak-plain'),
      }),
      expect: 200,
      check: (r) => (JSON.parse(r.text).content[0].text ? undefined : 'no content'),
    },
    chat_stream: {
      routed: true,
      send: () => send('chat_stream', {
        target: '/v1/chat/completions',
        headers: { ...bearer(), ...tokens(5, 40) },
        body: chat('soak-stream', {
          stream: true,
          ...(rand(2) ? { stream_options: { include_usage: true } } : {}),
        }),
        sse: true,
      }),
      expect: 200,
      check: (r) => (r.events.at(-1) === '[DONE]' ? undefined : `ended with ${r.events.at(-1)}`),
    },
    messages_stream: {
      routed: true,
      anthropic: true,
      send: () => send('messages_stream', {
        target: '/v1/messages',
        headers: { ...anthropic(), ...tokens(5, 40) },
        body: messages('soak-stream', { stream: true }),
        sse: true,
      }),
      expect: 200,
      check: (r) =>
        r.events.at(-1) === 'message_stop' ? undefined : `ended with ${r.events.at(-1)}`,
    },
    unknown_model: {
      send: () => send('unknown_model', {
        target: '/v1/chat/completions',
        headers: bearer(),
        body: chat('soak-no-such-model'),
      }),
      expect: 404,
    },
    bad_json: {
      send: () => send('bad_json', {
        target: '/v1/chat/completions',
        headers: bearer(),
        body: '{"model": "soak-plain", "messages": [',
      }),
      expect: 400,
    },
    denied_prompt: {
      send: () => send('denied_prompt', {
        target: '/v1/chat/completions',
        headers: bearer(),
        body: chat('soak-plain', { messages: [{ role: 'user', content: `say ${DENIED_PHRASE}` }] }),
      }),
      expect: 400,
    },
    no_key: {
      send: () => send('no_key', { target: '/v1/chat/completions', body: chat('soak-plain') }),
      expect: 401,
    },
    metrics: {
      send: () => send('metrics', { method: 'GET', target: '/metrics' }),
      expect: 200,
      check: (r) => void parsePrometheus(r.text),
    },
  };
  return { requests, kinds };
}

// The problem with one answer, or undefined.
function judge(r, kind) {
  if (r.error) return `no complete answer: ${r.error}`;
  if (r.problem) return r.problem;
  if (r.status !== kind.expect) {
    const gatewayError = kind.routed && [502, 503, 504].includes(r.status);
    if (!gatewayError) return `status ${r.status}, expected ${kind.expect}: ${r.text}`;
  }
  if (r.status !== 200) {
    const json = parseJson(r.text);
    const ok = kind.anthropic
      ? json?.type === 'error' && typeof json.error?.message === 'string'
      : typeof json?.error?.message === 'string' && typeof json.error.type === 'string';
    return ok ? undefined : `error not in the client's dialect: ${r.text}`;
  }
  try {
    const problem = kind.check?.(r);
    if (problem) return problem;
  } catch (err) {
    return `${err.message}: ${r.text?.slice(0, 200)}`;
  }
  if (kind.routed) {
    // test_version: "<tag of the request phase>/<tag of the response phase>".
    const tags = /^(.+)\/(.+)$/.exec(r.version ?? '');
    if (!tags || tags[1] !== tags[2]) return `x-plugin-version ${r.version}`;
  }
  return undefined;
}

// -----------------------------------------------------------------------------------------------
// The run.

const TEST_TIMEOUT_MS = (SECONDS + 180) * 1000;

test(`soak: ${SECONDS} s of mixed load with faults`, { timeout: TEST_TIMEOUT_MS }, async () => {
  const failures = [];
  const fail = (message) => {
    failures.push(message);
    console.log(`FAIL ${message}`);
  };
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-soak-'));
  const { mocks, gateway, accessLog } = await startSystem(workDir);
  const admin = async (method, p, body, expected) => {
    const answer = await adminRequest(gateway, ADMIN_TOKEN, method, p, body);
    if (answer.status !== expected) {
      fail(`admin ${method} ${p}: ${answer.status} (expected ${expected}) ${answer.text}`);
    }
    return answer;
  };
  const workerIds = new Map();  // mock name -> worker id
  for (const w of (await admin('GET', '/workers', undefined, 200)).json.workers) {
    workerIds.set(Object.keys(mocks).find((m) => mocks[m].url === w.url), w.id);
  }
  // test_version tags each answer with its configuration, which every replacement changes.
  const deployed = await admin('POST', '/wasm', {
    modules: [{ name: 'version', file_path: pluginPath('test_version'), config: 'v1' }],
  }, 201);
  const versionUuid = deployed.json.modules[0].uuid;

  const { requests, kinds } = makeClient(gateway);
  const faults = {
    worker_removals: 0,
    worker_additions: 0,
    mock_kills: 0,
    mock_restarts: 0,
    plugin_replacements: 0,
    plugin_deploys: 0,
    plugin_removals: 0,
  };
  let stopping = false;

  // Closed-loop users with a short random pause: load, without starving a 2-core machine.
  const user = async (choose, pauseMs) => {
    while (!stopping) {
      await kinds[choose()].send();
      await sleep(rand(pauseMs));
    }
  };
  const errorKinds = ['unknown_model', 'bad_json', 'denied_prompt', 'no_key'];

  // Faults, one at a time so that each pool keeps a worker: a worker removed through the admin
  // API and added back; c killed with SIGKILL under load and restarted (its requests must be
  // retried elsewhere); a stream upstream drained (removed, its streams left to finish),
  // restarted and added back, so that the gateway's pooled connections to it are stale.
  const removeWorker = async (name) => {
    await admin('DELETE', `/workers/${workerIds.get(name)}`, undefined, 200);
    faults.worker_removals++;
  };
  const addWorker = async (name) => {
    const body = { provider: PROVIDER_OF[name], url: mocks[name].url, weight: 1 };
    const answer = await admin('POST', '/workers', body, 201);
    if (answer.json?.id !== workerIds.get(name)) {
      fail(`worker ${name} came back as ${answer.json?.id}, was ${workerIds.get(name)}`);
    }
    faults.worker_additions++;
  };
  const flap = async (name) => {
    await removeWorker(name);
    await sleep(2000);
    await addWorker(name);
  };
  const kill = async (name) => {
    await mocks[name].stop('SIGKILL');
    faults.mock_kills++;
    await sleep(3000);  // long enough for the health check and the breaker to notice
    mocks[name] = await startMock({ ...MOCK_OPTIONS[name], port: mocks[name].port });
  };
  const drainAndRestart = async (name) => {
    await removeWorker(name);
    const idle = async () => (await mocks[name].stats()).active_streams === 0;
    await waitFor(idle, { timeoutMs: 20_000, what: `mock ${name} to finish its streams` });
    await sleep(300);  // a stream sent just before the removal may still have been on its way
    await waitFor(idle, { timeoutMs: 20_000, what: `mock ${name} to finish its streams` });
    await mocks[name].stop('SIGTERM');
    faults.mock_restarts++;
    mocks[name] = await startMock({ ...MOCK_OPTIONS[name], port: mocks[name].port });
    await addWorker(name);
  };
  const faultSteps = [
    () => flap('a'),
    () => kill('c'),
    () => flap('b'),
    () => drainAndRestart('a'),
    () => flap('c'),
    () => kill('c'),
    () => drainAndRestart('b'),
  ];
  const faultLoop = async () => {
    for (let step = 0; ; step++) {
      await sleep(2000);
      if (stopping) return;
      await faultSteps[step % faultSteps.length]();
    }
  };

  // Plugins: the version module gets a new tag every 5 s (a new configuration alone, or with its
  // bytes again by path or as base64); every 30 s two more modules are deployed, and removed
  // 10 s later.
  let tag = 1;
  const extras = [];
  const removeExtras = async () => {
    while (extras.length > 0) {
      await admin('DELETE', `/wasm/${extras.pop()}`, undefined, 200);
      faults.plugin_removals++;
    }
  };
  const pluginLoop = async () => {
    for (let tick = 1; ; tick++) {
      await sleep(5000);
      if (stopping) break;
      const change = { config: `v${++tag}` };
      if (tick % 3 === 1) change.file_path = pluginPath('test_version');
      if (tick % 3 === 2) {
        change.wasm_base64 = fs.readFileSync(pluginPath('test_version')).toString('base64');
      }
      await admin('PUT', `/wasm/${versionUuid}`, change, 200);
      faults.plugin_replacements++;
      if (tick % 6 === 1) {
        const answer = await admin('POST', '/wasm', {
          modules: [
            {
              name: 'filter',
              file_path: pluginPath('upstream_filter'),
              config: { max_outstanding: 100000 },
              failure_policy: 'fail_open',
            },
            { name: 'tag', file_path: pluginPath('test_header_append'), config: '-soak' },
          ],
        }, 201);
        for (const m of answer.json?.modules ?? []) extras.push(m.uuid);
        faults.plugin_deploys += answer.json?.modules?.length ?? 0;
      }
      if (tick % 6 === 3) await removeExtras();
    }
    await removeExtras();
  };

  const loadStart = Date.now();
  const rss = [];  // { t: seconds into the run, bytes }
  const sampleRss = () => {
    const status = fs.readFileSync(`/proc/${gateway.pid}/status`, 'utf8');
    const bytes = Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
    rss.push({ t: (Date.now() - loadStart) / 1000, bytes });
  };
  const rssLoop = async () => {
    while (!stopping) {
      sampleRss();
      await sleep(1000);
    }
  };
  const metricsLoop = async () => {
    for (;;) {
      await sleep(5000);
      if (stopping) return;
      await kinds.metrics.send();
    }
  };

  // A crash ends the run at once (the helpers print the gateway's stderr).
  let died;
  const crash = new AbortController();
  gateway.exited.then((how) => {
    if (gateway.stopping) return;
    died = how;
    crash.abort();
  });

  console.log(`soak: ${SECONDS} s, gateway pid ${gateway.pid}, work dir ${workDir}`);
  const loops = [
    ...[1, 2, 3].map(() => user(() => 'chat', 40)),
    user(() => 'messages', 40),
    ...[1, 2, 3, 4, 5, 6].map(() => user(() => 'chat_stream', 20)),
    ...[1, 2].map(() => user(() => 'messages_stream', 20)),
    user(() => pick(errorKinds), 100),
    faultLoop(),
    pluginLoop(),
    rssLoop(),
    metricsLoop(),
  ].map((loop) => loop.then(() => undefined, (err) => err));
  const progress = setInterval(() => {
    const elapsed = Math.round((Date.now() - loadStart) / 1000);
    console.log(`  ${elapsed} s: ${requests.length} requests, ` +
      `RSS ${mib(rss.at(-1)?.bytes ?? 0)} MiB, ${sum(Object.values(faults))} faults`);
  }, 30_000);
  await sleep(SECONDS * 1000, undefined, { signal: crash.signal }).catch(() => {});
  stopping = true;
  clearInterval(progress);
  // Each loop finishes what it started: requests get their answers, workers are back.
  const loopErrors = (await Promise.all(loops)).filter(Boolean);
  const duration = (Date.now() - loadStart) / 1000;
  const alive = died === undefined;
  let finalScrape = { id: undefined };
  let modules = [];
  let exit = died;
  if (alive) {
    for (const err of loopErrors) fail(`a load or fault loop failed: ${err.stack}`);
    sampleRss();
    // Counters are updated just after each answer is written: give the last ones a moment.
    await sleep(500);
    finalScrape = await kinds.metrics.send();
    modules = (await admin('GET', '/wasm', undefined, 200)).json?.modules ?? [];
    exit = await gateway.stop('SIGTERM');
    if (exit.code !== 0) fail(`on SIGTERM the gateway exited with ${JSON.stringify(exit)}`);
  } else {
    fail(`the gateway died after ${duration.toFixed(0)} s: ${JSON.stringify(died)}`);
  }
  for (const mock of Object.values(mocks)) await mock.stop();

  // ---------------------------------------------------------------------------------------------
  // Checks.

  // Every answer complete and as its kind expects.
  const problems = [];
  for (const r of requests) {
    const problem = judge(r, kinds[r.kind]);
    if (problem) problems.push(`${r.id}: ${problem}`);
  }
  if (problems.length > 0) {
    const some = problems.slice(0, 10).join('\n    ');
    fail(`${problems.length} answers not as expected:\n    ${some}`);
  }

  // The access log: each request exactly once, with the status the client saw; any other line
  // is a start-up probe (GET /health before the gateway was known to be up).
  const logLines = fs.readFileSync(accessLog, 'utf8').split('\n').filter(Boolean).map(JSON.parse);
  const logById = new Map();
  for (const line of logLines) {
    logById.set(line.request_id, [...(logById.get(line.request_id) ?? []), line]);
  }
  const mismatches = [];
  for (const r of requests) {
    const lines = logById.get(r.id) ?? [];
    if (lines.length !== 1) mismatches.push(`${r.id}: ${lines.length} lines`);
    else if (!r.error && lines[0].status !== r.status) {
      mismatches.push(`${r.id}: logged ${lines[0].status}, the client got ${r.status}`);
    }
  }
  const ours = new Set(requests.map((r) => r.id));
  const others = logLines.filter((l) => !ours.has(l.request_id));
  for (const l of others.filter((o) => o.method !== 'GET' || o.path !== '/health')) {
    mismatches.push(`a line of no request of ours: ${JSON.stringify(l)}`);
  }
  if (mismatches.length > 0) {
    const some = mismatches.slice(0, 10).join('\n    ');
    fail(`access log: ${mismatches.length} mismatches:\n    ${some}`);
  }
  const lost = requests.filter((r) => r.error || !logById.has(r.id)).length;

  // sluice_requests_total, read by the final scrape, counts every request logged before it.
  const byStatus = (entries) => {
    const counts = {};
    for (const [status, n] of entries) counts[status] = (counts[status] ?? 0) + n;
    return counts;
  };
  const samples = finalScrape.status === 200 ? parsePrometheus(finalScrape.text) : [];
  const counted = byStatus(
    selectSamples(samples, 'sluice_requests_total').map((s) => [s.labels.status, s.value]),
  );
  const logged = byStatus(
    logLines.filter((l) => l.request_id !== finalScrape.id).map((l) => [String(l.status), 1]),
  );
  const countedTotal = sum(Object.values(counted));
  if (alive && JSON.stringify(counted) !== JSON.stringify(logged)) {
    fail(`sluice_requests_total by status ${JSON.stringify(counted)} ` +
      `!= access log ${JSON.stringify(logged)}`);
  }

  // Plugins: the replaced module active, the deployed-and-removed ones gone.
  const version = modules.find((m) => m.uuid === versionUuid);
  if (alive && (version?.state !== 'active' || version.version !== tag)) {
    fail(`the version module: ${JSON.stringify(version)}, expected version ${tag}, active`);
  }
  if (modules.some((m) => m.name === 'filter' || m.name === 'tag')) fail('removed modules listed');

  // RSS flat after warm-up.
  // Fractions of the load period; the last sample, after the wind-down, counts in the last part.
  const inRange = (lo, hi) =>
    rss.filter((s) => s.t >= lo * SECONDS && (hi >= 1 || s.t < hi * SECONDS));
  const mean = (list) => sum(list.map((s) => s.bytes)) / Math.max(1, list.length);
  const q2 = mean(inRange(0.25, 0.5));
  const q4 = mean(inRange(0.75, 1));
  const allowed = Math.max(RSS_TOLERANCE.ratio * q2, RSS_TOLERANCE.bytes);
  const rssJudged = alive && !SANITIZED && SECONDS >= MIN_SECONDS_FOR_RSS;
  if (rssJudged && q4 - q2 > allowed) {
    fail(`RSS grew by ${mib(q4 - q2)} MiB from the second quarter to the last ` +
      `(allowed ${mib(allowed)} MiB)`);
  }

  // ---------------------------------------------------------------------------------------------
  // Report.

  const label = (r) => (r.error ? 'error' : String(r.status));
  const statuses = [...new Set(requests.map(label))].sort();
  const table = [['kind', 'sent', ...statuses]];
  const outcomes = {};
  for (const kind of Object.keys(kinds)) {
    const mine = requests.filter((r) => r.kind === kind);
    const counts = statuses.map((s) => mine.filter((r) => label(r) === s).length);
    table.push([kind, mine.length, ...counts].map(String));
    const seen = statuses.map((s, i) => [s, counts[i]]).filter(([, n]) => n > 0);
    outcomes[kind] = Object.fromEntries(seen);
  }
  table.push(['total', requests.length, ...statuses.map((s) =>
    requests.filter((r) => label(r) === s).length)].map(String));
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  const metric = (name) => sum(selectSamples(samples, name).map((s) => s.value));
  const peak = Math.max(...rss.map((s) => s.bytes));
  const gatewayErrors = requests.filter((r) => kinds[r.kind].routed && r.status >= 500).length;

  console.log(`\nsoak: ${duration.toFixed(0)} s, ${requests.length} requests ` +
    `(${(requests.length / duration).toFixed(0)}/s)`);
  for (const row of table) {
    const cells = row.map((c, i) => (i ? c.padStart(widths[i]) : c.padEnd(widths[i])));
    console.log(`  ${cells.join('  ')}`);
  }
  console.log(`  routed requests answered 5xx by the gateway: ${gatewayErrors}`);
  console.log(`  lost (no complete answer, or no access-log line): ${lost}`);
  const faultList = Object.entries(faults).map(([k, v]) => `${k.replaceAll('_', ' ')} ${v}`);
  console.log(`faults: ${sum(Object.values(faults))}: ${faultList.join(', ')}`);
  console.log(`gateway: ${metric('sluice_upstream_retries_total')} retries ` +
    `(${metric('sluice_upstream_retries_denied_total')} denied), ` +
    `${metric('sluice_upstream_breaker_opens_total')} breaker opens, ` +
    `${metric('sluice_route_no_healthy_upstream_total')} without a healthy upstream`);
  let unjudged = `shorter than ${MIN_SECONDS_FOR_RSS} s`;
  if (SANITIZED) unjudged = 'sanitized build';
  if (!alive) unjudged = 'crash';
  console.log(`RSS MiB: first ${mib(rss[0].bytes)}, second-quarter mean ${mib(q2)}, ` +
    `last-quarter mean ${mib(q4)}, peak ${mib(peak)}, last ${mib(rss.at(-1).bytes)}: ` +
    `growth ${mib(q4 - q2)} (allowed ${mib(allowed)}` +
    `${rssJudged ? '' : `, not judged: ${unjudged}`})`);
  const tenths = Array.from({ length: 10 }, (_, i) => mib(mean(inRange(i / 10, (i + 1) / 10))));
  console.log(`  by tenth of the run: ${tenths.join(' ')}`);
  console.log(`access log: ${logLines.length} lines = ${requests.length} requests + ` +
    `${others.length} start-up probes; sluice_requests_total ${countedTotal} (all but the ` +
    'final scrape)');
  console.log(`gateway ${alive ? 'alive at the end; SIGTERM:' : 'DIED:'} ${JSON.stringify(exit)}`);
  // The gateway's log by kind of line (numbers and ids left out), so that a new kind stands out.
  const logKinds = new Map();
  for (const line of gateway.stderr.split('\n').filter((l) => l.trim() !== '')) {
    const key = line.replace(/^\S+\s+/, '').replace(/\d+/g, 'N').slice(0, 120);
    logKinds.set(key, (logKinds.get(key) ?? 0) + 1);
  }
  console.log(`gateway log: ${sum([...logKinds.values()])} lines`);
  for (const [key, n] of [...logKinds].sort((x, y) => y[1] - x[1]).slice(0, 10)) {
    console.log(`  ${String(n).padStart(6)}  ${key}`);
  }

  fs.mkdirSync(OUT_DIR, { recursive: true });
  const results = {
    date: new Date().toISOString(),
    seconds: Math.round(duration),
    requests: requests.length,
    outcomes,
    lost,
    gateway_errors: gatewayErrors,
    faults,
    rss_mib: { first: rss[0].bytes, q2, q4, peak, last: rss.at(-1).bytes },
    access_log_lines: logLines.length,
    requests_total_metric: countedTotal,
    exit,
    failures,
  };
  for (const [k, v] of Object.entries(results.rss_mib)) results.rss_mib[k] = Number(mib(v));
  fs.writeFileSync(path.join(OUT_DIR, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  console.log(`results: ${path.join(OUT_DIR, 'results.json')}`);

  if (failures.length > 0) {
    fs.writeFileSync(path.join(workDir, 'gateway.stderr'), gateway.stderr);
    console.log(`\nsoak FAILED; kept ${workDir} (access.log, gateway.stderr)`);
    throw new Error(`soak failed:\n  ${failures.join('\n  ')}`);
  }
  fs.rmSync(workDir, { recursive: true, force: true });
  const memory = rssJudged ? 'RSS flat' : 'RSS not judged';
  console.log(`\nsoak passed: no crash, ${memory}, every request accounted for, none lost`);
});
