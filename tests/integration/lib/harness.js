// Starts real sluice processes (gateway and mock upstreams) on free ports for the integration
// tests, and makes sure none of them outlives the test file, whatever happens to the tests.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SLUICE_BIN = process.env.SLUICE_BIN || path.join(REPO, 'build', 'sluice');
// The example and test plugins (built by examples/plugins), and the path of one of them.
export const PLUGIN_DIR = process.env.SLUICE_PLUGIN_DIR || path.join(REPO, 'build', 'plugins');
export const pluginPath = (name) => path.join(PLUGIN_DIR, `${name}.wasm`);

// How long a process gets to start listening before the test gives up.
const START_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: every child is killed in an after() hook and when this process exits.

const children = new Set();
const tempDirs = new Set();

function killAll(signal = 'SIGKILL') {
  for (const child of children) {
    child.sluiceProc.stopping = true;
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

after(() => killAll());
process.on('exit', () => killAll());
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    killAll();
    process.exit(128 + os.constants.signals[signal]);
  });
}

function makeTempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-it-'));
  tempDirs.add(dir);
  return dir;
}

// Spawns `sluice args...`, collecting stdout lines and stderr text.
function spawnSluice(args, env = {}) {
  if (!fs.existsSync(SLUICE_BIN)) {
    throw new Error(`sluice binary not found at ${SLUICE_BIN} (build it or set SLUICE_BIN)`);
  }
  const child = spawn(SLUICE_BIN, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const proc = {
    child,
    pid: child.pid,
    stdoutLines: [],
    stderr: '',
    stopping: false,
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        children.delete(child);
        // A crash is the likeliest cause of whatever fails next: show what the process said.
        if (!proc.stopping) {
          process.stderr.write(
            `\n[harness] sluice ${args[0]} (pid ${child.pid}) exited unexpectedly: ` +
              `code ${code}, signal ${signal}\n--- its stderr ---\n${proc.stderr}\n---\n`,
          );
        }
        resolve({ code, signal });
      });
    }),
  };
  child.sluiceProc = proc;
  readline
    .createInterface({ input: child.stdout })
    .on('line', (line) => proc.stdoutLines.push(line));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => {
    proc.stderr += text;
  });
  child.on('error', (err) => {
    proc.stderr += `spawn error: ${err.message}\n`;
  });
  return proc;
}

// ---------------------------------------------------------------------------------------------
// Small utilities.

// A port that was free a moment ago (the kernel picks it; we close it again).
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

// Resolves when `fn` returns a truthy value; rejects after `timeoutMs` with `what`.
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      if (err.fatal) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

// fetch() that never hangs a test: aborts after `timeoutMs`.
export function fetchWithTimeout(url, init = {}, timeoutMs = 10_000) {
  return fetch(url, { ...init, signal: init.signal ?? AbortSignal.timeout(timeoutMs) });
}

// One HTTPS request to a server with a test certificate: `ca` (PEM text) is the only trusted CA;
// the host of `url` is the name checked (SNI), the connection goes to 127.0.0.1. Returns
// { status, headers, text, json }.
export function httpsRequest(
  url,
  { method = 'GET', ca, body, headers = {}, timeoutMs = 5000 } = {},
) {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = https.request(
      {
        host: '127.0.0.1',
        port: target.port,
        servername: target.hostname,
        path: target.pathname + target.search,
        method,
        ca,
        headers,
        agent: false,
        timeout: timeoutMs,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () => {
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`HTTPS ${method} ${url} timed out`)));
    request.on('error', reject);
    request.end(body);
  });
}

// Waits until GET url answers `status`, failing early when the process dies. `get(url)` makes
// the request (fetch by default) and returns the status.
async function waitUntilServing(proc, url, status, name, get = undefined) {
  let exitedWith = null;
  proc.exited.then((e) => {
    exitedWith = e;
  });
  await waitFor(
    async () => {
      if (exitedWith) {
        throw Object.assign(new Error(`${name} exited (${JSON.stringify(exitedWith)})`), {
          fatal: true,
        });
      }
      if (get) return (await get(url)) === status;
      const res = await fetchWithTimeout(url, {}, 1000);
      await res.arrayBuffer();
      return res.status === status;
    },
    { timeoutMs: START_TIMEOUT_MS, intervalMs: 30, what: `${name} at ${url}` },
  ).catch((err) => {
    throw new Error(`${err.message}\n--- ${name} stderr ---\n${proc.stderr}`);
  });
  if (exitedWith) throw new Error(`${name} exited during start\n${proc.stderr}`);
}

// Stops a process with `signal` and waits for it (SIGKILL after `timeoutMs`).
async function stopProcess(proc, signal = 'SIGTERM', timeoutMs = 5000) {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.exited;
  proc.stopping = true;
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// The mock upstream.

// The deterministic text of an answer of `n` tokens, as the mock writes it.
export function mockText(n) {
  let text = '';
  for (let i = 0; i < n; i++) text += `tok${i} `;
  return text;
}

// Starts `sluice mock` on a free port. opts: tokens, tokenDelayMs, latencyMs, failRate, seed,
// threads, requireKeys, rejectKeys (arrays), tls ({ cert, key: file paths, ca: PEM text of the
// CA that signed cert, host: a name of the certificate, 'localhost' by default; the mock then
// serves HTTPS and `url` is https://HOST:PORT, which the control requests reach on 127.0.0.1
// with that name), args (extra flags).
export async function startMock(opts = {}) {
  const port = opts.port ?? (await freePort());
  const args = ['mock', '--listen', `127.0.0.1:${port}`];
  if (opts.tokens !== undefined) args.push('--tokens', String(opts.tokens));
  if (opts.tokenDelayMs !== undefined) args.push('--token-delay-ms', String(opts.tokenDelayMs));
  if (opts.latencyMs !== undefined) args.push('--latency-ms', String(opts.latencyMs));
  if (opts.failRate !== undefined) args.push('--fail-rate', String(opts.failRate));
  if (opts.seed !== undefined) args.push('--seed', String(opts.seed));
  if (opts.threads !== undefined) args.push('--threads', String(opts.threads));
  for (const key of opts.requireKeys ?? []) args.push('--require-key', key);
  for (const key of opts.rejectKeys ?? []) args.push('--reject-key', key);
  if (opts.tls) args.push('--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key);
  if (opts.args) args.push(...opts.args);

  const proc = spawnSluice(args, opts.env);
  const tls = opts.tls;
  const url = tls ? `https://${tls.host ?? 'localhost'}:${port}` : `http://127.0.0.1:${port}`;
  // { status, text } of a control request, over HTTPS with the test CA when the mock has TLS.
  const control = async (p, method = 'GET') => {
    if (tls) return httpsRequest(`${url}${p}`, { method, ca: tls.ca });
    const res = await fetchWithTimeout(`${url}${p}`, { method }, 5000);
    return { status: res.status, text: await res.text() };
  };
  await waitUntilServing(
    proc,
    `${url}/mock/stats`,
    200,
    `mock on port ${port}`,
    tls ? async (u) => (await httpsRequest(u, { ca: tls.ca, timeoutMs: 1000 })).status : undefined,
  );

  const getJson = async (p) => {
    const { status, text } = await control(p);
    if (status !== 200) throw new Error(`GET ${p} on mock: ${status} ${text}`);
    return JSON.parse(text);
  };
  return Object.assign(proc, {
    port,
    url,
    stats: () => getJson('/mock/stats'),
    last: () => getJson('/mock/last'),
    async reset() {
      const { status } = await control('/mock/reset', 'POST');
      if (status >= 300) throw new Error(`POST /mock/reset: ${status}`);
    },
    stop: (signal) => stopProcess(proc, signal),
  });
}

// Makes a test PKI with the openssl CLI in a temporary directory (removed with the processes):
// a CA, and one server certificate per entry of `servers` ({ name: [subjectAltName entries] },
// e.g. { good: ['DNS:localhost', 'IP:127.0.0.1'] }), each signed by the CA. Returns
// { dir, caFile, ca (PEM text), [name]: { cert, key } (file paths) }.
export function makeCertificates(servers) {
  const dir = makeTempDir();
  const run = (args) => {
    if (typeof args === 'string') args = args.split(' ');
    const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 20_000 });
    if (result.status !== 0) {
      throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr || result.error}`);
    }
  };
  // Arguments without spaces are written as one string; the others are appended.
  const EC_KEY = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';
  run([
    ...`req -x509 ${EC_KEY} -keyout ca.key -out ca.pem -days 2`.split(' '),
    ...['-subj', '/CN=sluice test CA', '-addext', 'basicConstraints=critical,CA:TRUE'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  ]);
  const result = { dir, caFile: path.join(dir, 'ca.pem') };
  result.ca = fs.readFileSync(result.caFile, 'utf8');
  for (const [name, altNames] of Object.entries(servers)) {
    const firstDns = altNames.find((a) => a.startsWith('DNS:'))?.slice(4) ?? 'server';
    fs.writeFileSync(
      path.join(dir, `${name}.ext`),
      `subjectAltName=${altNames.join(',')}\nbasicConstraints=CA:FALSE\n` +
        'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
    );
    run([
      ...`req ${EC_KEY} -keyout ${name}.key -out ${name}.csr`.split(' '),
      ...['-subj', `/CN=${firstDns}`],
    ]);
    run(
      `x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ${name}.pem ` +
        `-days 2 -extfile ${name}.ext`,
    );
    result[name] = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The gateway.

// Writes `config` (YAML text, or an object written as JSON, which is YAML too) to a temporary
// file and returns its path. `listen` is added when missing.
export function writeConfig(config, { fileName = 'sluice.yaml', port } = {}) {
  const dir = makeTempDir();
  const file = path.join(dir, fileName);
  let text;
  if (typeof config === 'string') {
    text = config;
    if (port !== undefined && !/^listen:/m.test(text)) text = `listen: 127.0.0.1:${port}\n${text}`;
  } else {
    const object = { ...config };
    if (port !== undefined && object.listen === undefined) object.listen = `127.0.0.1:${port}`;
    text = JSON.stringify(object, null, 2) + '\n';
  }
  fs.writeFileSync(file, text);
  return file;
}

function listenPortOf(config) {
  const listen =
    typeof config === 'string' ? /^listen:\s*["']?([^\s"'#]+)/m.exec(config)?.[1] : config.listen;
  if (!listen) return undefined;
  return Number(listen.slice(listen.lastIndexOf(':') + 1));
}

// Starts `sluice run --config FILE` and waits until GET /health answers 200.
// The result has port, url, stdoutLines (access log lines), stderr, accessLog() (parsed JSON
// lines), waitForLog(pred), signal(name), stop(), exited. `ca` (PEM text): the config has
// `tls`, its certificate is for localhost and signed by `ca`; url is then https://localhost.
export async function startGateway(config, env = {}, { ca } = {}) {
  const port = listenPortOf(config) ?? (await freePort());
  const configPath = writeConfig(config, { port });
  const proc = spawnSluice(['run', '--config', configPath], env);
  const url = ca ? `https://localhost:${port}` : `http://127.0.0.1:${port}`;
  await waitUntilServing(
    proc,
    `${url}/health`,
    200,
    `gateway on port ${port}`,
    ca ? async (u) => (await httpsRequest(u, { ca, timeoutMs: 1000 })).status : undefined,
  );

  const accessLog = () => {
    const entries = [];
    for (const line of proc.stdoutLines) {
      try {
        const value = JSON.parse(line);
        if (value && typeof value === 'object') entries.push(value);
      } catch {
        // not a log line
      }
    }
    return entries;
  };
  return Object.assign(proc, {
    port,
    url,
    configPath,
    accessLog,
    waitForLog: (pred, timeoutMs = 3000) =>
      waitFor(() => accessLog().find(pred), { timeoutMs, what: 'an access log line' }),
    signal: (name) => {
      proc.stopping = true;
      proc.child.kill(name);
    },
    stop: (signal) => stopProcess(proc, signal),
  });
}

// A gateway config with one openai provider over `mocks` and a catch-all route (plus extra
// top-level keys).
export function simpleConfig(mocks, extra = {}) {
  return {
    threads: 2,
    providers: [{ id: 'mock', type: 'openai', endpoints: mocks.map((m) => m.url) }],
    routes: [{ name: 'all', models: ['*'], provider: 'mock' }],
    ...extra,
  };
}

// Runs `sluice args...` to completion (for `check`); returns { code, stdout, stderr }.
export function runSluice(args, { env = {}, timeoutMs = 10_000 } = {}) {
  const result = spawnSync(SLUICE_BIN, args, {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return {
    code: result.status,
    signal: result.signal,
    stdout: result.stdout,
    stderr: result.stderr,
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

// POSTs JSON (object or raw string) and returns { res, status, headers, text, json }.
export async function postJson(url, body, { headers = {}, timeoutMs = 10_000 } = {}) {
  const res = await fetchWithTimeout(
    url,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    },
    timeoutMs,
  );
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { res, status: res.status, headers: res.headers, text, json };
}

// A request to the admin listener at `gateway.adminUrl` with `token` (none: no header); `body` is
// sent as JSON (an object) or as is (a string). Returns { status, text, json } (json undefined
// when the answer is not JSON).
export async function adminRequest(gateway, token, method, p, body) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetchWithTimeout(`${gateway.adminUrl}${p}`, {
    method,
    headers,
    body: body === undefined || typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

// Reads a Server-Sent Events body; yields { data, event, at } per event as it arrives
// (`at`: ms since `start`).
export async function* readSse(res, start = Date.now()) {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body) {
    buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const raw = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { data: '', event: undefined, at: Date.now() - start };
      const data = [];
      for (const line of raw.split('\n')) {
        if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        else if (line.startsWith('event:')) event.event = line.slice(6).trim();
      }
      if (data.length === 0 && event.event === undefined) continue;
      event.data = data.join('\n');
      yield event;
    }
  }
}

// Content of the delta of an OpenAI chat chunk ('' when absent).
export function chunkContent(data) {
  const chunk = JSON.parse(data);
  return chunk.choices?.[0]?.delta?.content ?? chunk.choices?.[0]?.text ?? '';
}

// Asserts the OpenAI error shape {"error":{"message":string,"type":string,"code":...}}.
export function isOpenAiError(json) {
  return (
    json !== null &&
    typeof json === 'object' &&
    typeof json.error === 'object' &&
    json.error !== null &&
    typeof json.error.message === 'string' &&
    json.error.message.length > 0 &&
    typeof json.error.type === 'string' &&
    'code' in json.error
  );
}

// A raw HTTP/1.1 client connection: writes requests as given and parses responses by
// Content-Length or chunked encoding, so tests control keep-alive and header sizes exactly.
export class RawConnection {
  static async open(port, host = '127.0.0.1') {
    const socket = net.connect(port, host);
    await once(socket, 'connect');
    return new RawConnection(socket);
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.closed = false;
    this.waiters = [];
    socket.on('data', (data) => {
      this.buffer = Buffer.concat([this.buffer, data]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {
      this.closed = true;
      this.wake();
    });
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  async waitData(deadline) {
    if (this.closed) return false;
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error('raw HTTP response timed out');
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, remaining);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return true;
  }

  write(data) {
    this.socket.write(data);
  }

  // Sends `request` (string or Buffer) and reads one response.
  async request(request, timeoutMs = 10_000) {
    this.write(request);
    return this.readResponse(timeoutMs);
  }

  async readResponse(timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    let headerEnd;
    while ((headerEnd = this.buffer.indexOf('\r\n\r\n')) < 0) {
      if (!(await this.waitData(deadline))) {
        if (this.buffer.length === 0) return null; // closed without an answer
        throw new Error(`connection closed inside response head: ${this.buffer}`);
      }
    }
    const head = this.buffer.subarray(0, headerEnd).toString('latin1');
    this.buffer = this.buffer.subarray(headerEnd + 4);
    const [statusLine, ...headerLines] = head.split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let body;
    if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const parts = [];
      for (;;) {
        let lineEnd;
        while ((lineEnd = this.buffer.indexOf('\r\n')) < 0) {
          if (!(await this.waitData(deadline))) throw new Error('closed inside chunked body');
        }
        const size = parseInt(this.buffer.subarray(0, lineEnd).toString('latin1'), 16);
        while (this.buffer.length < lineEnd + 2 + size + 2) {
          if (!(await this.waitData(deadline))) throw new Error('closed inside chunked body');
        }
        parts.push(this.buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        this.buffer = this.buffer.subarray(lineEnd + 2 + size + 2);
        if (size === 0) break;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      while (this.buffer.length < length) {
        if (!(await this.waitData(deadline))) throw new Error('closed inside body');
      }
      body = this.buffer.subarray(0, length);
      this.buffer = this.buffer.subarray(length);
    } else {
      while (await this.waitData(deadline));
      body = this.buffer;
      this.buffer = Buffer.alloc(0);
    }
    const text = body.toString('utf8');
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status, headers, text, json };
  }

  close() {
    this.socket.destroy();
  }
}

// Builds a raw HTTP/1.1 POST request with a JSON body.
export function rawPost(target, body, extraHeaders = {}) {
  const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  let head = `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n`;
  head += `Content-Length: ${payload.length}\r\n`;
  for (const [k, v] of Object.entries(extraHeaders)) head += `${k}: ${v}\r\n`;
  return Buffer.concat([Buffer.from(head + '\r\n'), payload]);
}

// Resolves true when a new TCP connection to `port` is refused (or reset at once).
export function connectionRefused(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    socket.on('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(false);
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNREFUSED');
    });
  });
}
