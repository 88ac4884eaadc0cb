// The config file: `sluice check`, errors that name the key and the line, ${ENV} interpolation,
// and the access_log setting.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  REPO,
  freePort,
  postJson,
  runSluice,
  startGateway,
  startMock,
  waitFor,
  writeConfig,
} from './lib/harness.js';

const CHAT = { messages: [{ role: 'user', content: 'hi' }] };

function validYaml(port) {
  return `listen: 127.0.0.1:${port}
threads: 1
providers:
  - id: local
    type: openai
    endpoints: ["http://127.0.0.1:1"]
routes:
  - models: ["*"]
    provider: local
`;
}

describe('sluice check', { timeout: 30_000 }, () => {
  test('a valid config prints "FILE: ok" and exits 0', () => {
    const file = writeConfig(validYaml(18080));
    const result = runSluice(['check', '--config', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), `${file}: ok`);
  });

  test('the example config of `make run` is valid', () => {
    const file = path.join(REPO, 'examples', 'sluice.yaml');
    const result = runSluice(['check', '--config', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /: ok$/m);
  });

  test('an unknown provider type names the file, line and key', () => {
    const file = writeConfig(`listen: 127.0.0.1:18080
providers:
  - id: local
    type: foo
    endpoints: ["http://127.0.0.1:1"]
routes:
  - models: ["*"]
    provider: local
`);
    const result = runSluice(['check', '--config', file]);
    assert.notEqual(result.code, 0);
    assert.ok(
      result.stderr.includes(`${file}:4: providers[0].type:`),
      `stderr does not name line 4 and providers[0].type:\n${result.stderr}`,
    );
    assert.match(result.stderr, /"?foo"?/);
    assert.doesNotMatch(result.stdout, /: ok/);
  });

  test('every problem is reported, each with its own line', () => {
    const file = writeConfig(`listen: 127.0.0.1:18080
threads: many
providers:
  - id: local
    type: openai
    endpoints: ["http://127.0.0.1:1"]
routes:
  - models: ["*"]
    provider: nowhere
`);
    const result = runSluice(['check', '--config', file]);
    assert.notEqual(result.code, 0);
    assert.ok(result.stderr.includes(`${file}:2: threads`), result.stderr);
    assert.ok(result.stderr.includes(`${file}:9: routes[0].provider`), result.stderr);
    assert.match(result.stderr, /nowhere/);
  });

  test('invalid YAML names the line', () => {
    const file = writeConfig(`listen: 127.0.0.1:18080
providers:
  - id: local
    type: openai
    endpoints: ["http://127.0.0.1:1"
routes: []
`);
    const result = runSluice(['check', '--config', file]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:\\d+:`));
  });

  test('a missing file is an error that names it', () => {
    const result = runSluice(['check', '--config', '/nonexistent/sluice.yaml']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /\/nonexistent\/sluice\.yaml/);
  });

  test('an unset ${VAR} is an error naming the variable', () => {
    const file = writeConfig(`listen: 127.0.0.1:18080
providers:
  - id: local
    type: openai
    endpoints: ["http://127.0.0.1:1"]
    api_tokens: ["\${SLUICE_IT_UNSET_TOKEN}"]
routes:
  - models: ["*"]
    provider: local
`);
    const result = runSluice(['check', '--config', file], {
      env: { SLUICE_IT_UNSET_TOKEN: undefined },
    });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /SLUICE_IT_UNSET_TOKEN/);
  });

  test('`sluice run` with an invalid config exits non-zero without serving', async () => {
    const port = await freePort();
    const file = writeConfig(validYaml(port).replace('type: openai', 'type: foo'));
    const result = runSluice(['run', '--config', file], { timeoutMs: 5000 });
    assert.equal(result.signal, null, 'sluice run kept running with an invalid config');
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /providers\[0\]\.type/);
  });
});

describe('config at run time', { timeout: 60_000 }, () => {
  let mock;

  before(async () => {
    mock = await startMock({ tokens: 2 });
  });

  test('${LOCAL_TOKEN} in api_tokens is sent upstream as a Bearer token', async () => {
    const gw = await startGateway(
      `threads: 1
providers:
  - id: local
    type: openai
    endpoints: ["${mock.url}"]
    api_tokens: ["\${LOCAL_TOKEN}"]
routes:
  - models: ["*"]
    provider: local
`,
      { LOCAL_TOKEN: 'sk-integration-7f3a' },
    );
    try {
      const result = await postJson(
        `${gw.url}/v1/chat/completions`,
        { model: 'tok-model', ...CHAT },
        { headers: { authorization: 'Bearer client-key-must-not-leak' } },
      );
      assert.equal(result.status, 200, result.text);
      const last = await mock.last();
      assert.equal(last.headers.authorization, 'Bearer sk-integration-7f3a');
      assert.ok(!JSON.stringify(last.headers).includes('client-key-must-not-leak'));
    } finally {
      await gw.stop();
    }
  });

  test('access_log: off writes no access log lines', async () => {
    const gw = await startGateway({
      threads: 1,
      access_log: 'off',
      providers: [{ id: 'local', type: 'openai', endpoints: [mock.url] }],
      routes: [{ models: ['*'], provider: 'local' }],
    });
    try {
      const result = await postJson(`${gw.url}/v1/chat/completions`, { model: 'quiet', ...CHAT });
      assert.equal(result.status, 200, result.text);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(gw.accessLog(), []);
    } finally {
      await gw.stop();
    }
  });

  test('access_log: <path> appends JSON lines to that file', async () => {
    const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || '/tmp', 'sluice-it-log-'));
    const logFile = path.join(dir, 'access.log');
    const gw = await startGateway({
      threads: 1,
      access_log: logFile,
      providers: [{ id: 'local', type: 'openai', endpoints: [mock.url] }],
      routes: [{ name: 'r', models: ['*'], provider: 'local' }],
    });
    try {
      const id = `file-log-${Date.now()}`;
      const result = await postJson(
        `${gw.url}/v1/chat/completions`,
        { model: 'to-file', ...CHAT },
        { headers: { 'x-request-id': id } },
      );
      assert.equal(result.status, 200, result.text);
      const line = await waitFor(
        () => {
          if (!fs.existsSync(logFile)) return undefined;
          return fs
            .readFileSync(logFile, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l))
            .find((l) => l.request_id === id);
        },
        { timeoutMs: 3000, what: `a line for ${id} in ${logFile}` },
      );
      assert.equal(line.model, 'to-file');
      assert.equal(line.route, 'r');
      assert.equal(line.status, 200);
      assert.deepEqual(gw.accessLog(), [], 'nothing on stdout when logging to a file');
    } finally {
      await gw.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
