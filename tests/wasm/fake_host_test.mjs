// Guest-side checks of the C SDK, the example plugins and the test modules, run on Node's own
// WebAssembly engine with a minimal proxy-wasm host written here (headers, properties, plugin
// configuration, shared data with CAS, local responses, logs, WASI clock/random/fd_write).
// It proves the guests follow the ABI independently of sluice's host; the host's own tests
// run the same modules through the real engine.
//
//   node fake_host_test.mjs <plugins dir> <test modules dir>

import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

const [pluginDir, testWasmDir] = process.argv.slice(2);
if (!pluginDir || !testWasmDir) {
  console.error('usage: node fake_host_test.mjs <plugins dir> <test modules dir>');
  process.exit(2);
}

const OK = 0, NOT_FOUND = 1, BAD_ARGUMENT = 2, INVALID_MEMORY_ACCESS = 6, CAS_MISMATCH = 8;
const enc = new TextEncoder();
const dec = new TextDecoder();

// Parses a serialized map as a strict host would; returns null when malformed.
function parsePairs(bytes) {
  if (bytes.length === 0 || (bytes.length === 1 && bytes[0] === 0)) return [];
  if (bytes.length < 4) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(0, true);
  if (n > (bytes.length - 4) / 8) return null;
  let off = 4 + n * 8;
  const pairs = [];
  for (let i = 0; i < n; i++) {
    const kl = view.getUint32(4 + i * 8, true), vl = view.getUint32(8 + i * 8, true);
    if (off + kl + 1 + vl + 1 > bytes.length) return null;
    if (bytes[off + kl] !== 0 || bytes[off + kl + 1 + vl] !== 0) return null;
    const k = dec.decode(bytes.subarray(off, off + kl));
    off += kl + 1;
    const v = dec.decode(bytes.subarray(off, off + vl));
    off += vl + 1;
    pairs.push([k, v]);
  }
  return pairs;
}

function serializePairs(pairs) {
  const encoded = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
  let size = 4 + 8 * pairs.length;
  for (const [k, v] of encoded) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, pairs.length, true);
  let off = 4 + 8 * pairs.length;
  encoded.forEach(([k, v], i) => {
    view.setUint32(4 + i * 8, k.length, true);
    view.setUint32(8 + i * 8, v.length, true);
    out.set(k, off);
    off += k.length + 1;
    out.set(v, off);
    off += v.length + 1;
  });
  return out;
}

function readLeb(bytes, at) {
  let value = 0, shift = 0, b;
  do {
    b = bytes[at++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return [value, at];
}

function leb(value) {
  const out = [];
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value) b |= 0x80;
    out.push(b);
  } while (value);
  return out;
}

// Returns a copy of a module whose (single, 32-bit) memory is limited to `maxPages`, as a
// host caps guest memory before compiling.
function capMemory(bytes, maxPages) {
  const out = [...bytes.subarray(0, 8)];
  for (let at = 8; at < bytes.length;) {
    const id = bytes[at];
    const [size, body] = readLeb(bytes, at + 1);
    let section = [...bytes.subarray(body, body + size)];
    if (id === 5) {
      let [count, p] = readLeb(bytes, body);
      assert.equal(count, 1);
      const flags = bytes[p];
      const [min, afterMin] = readLeb(bytes, p + 1);
      let max = maxPages;
      if (flags & 1) max = Math.min(readLeb(bytes, afterMin)[0], maxPages);
      section = [1, flags | 1, ...leb(min), ...leb(max)];
    }
    out.push(id, ...leb(section.length), ...section);
    at = body + size;
  }
  return new Uint8Array(out);
}

// Shared data as a host keeps it for every VM: key -> {value, cas}.
class SharedData {
  constructor() {
    this.map = new Map();
    this.nextCas = 1;
    this.failNextSets = 0;  // makes the next N conditional writes lose a race
  }
}

// One VM (one instance of one module) with one plugin context, as sluice runs them.
class Vm {
  constructor(path, { config = '', shared = new SharedData(), properties = {}, maxPages,
                      acceptAnyMap = false } = {}) {
    this.acceptAnyMap = acceptAnyMap;  // a broken host, for checking bad_header_map itself
    const bytes = readFileSync(path);
    this.module = new WebAssembly.Module(maxPages ? capMemory(bytes, maxPages) : bytes);
    this.config = enc.encode(config);
    this.shared = shared;
    this.properties = properties;  // dotted path -> string
    this.logs = [];
    this.maps = [[], [], [], []];  // request/response headers and trailers
    this.localResponse = null;
    this.nextContext = 1;
    const imports = {};
    for (const imp of WebAssembly.Module.imports(this.module)) {
      const fn = this.hostFunction(imp.module, imp.name);
      (imports[imp.module] ??= {})[imp.name] = fn;
    }
    this.instance = new WebAssembly.Instance(this.module, imports);
    this.exports = this.instance.exports;
  }

  get mem() { return new DataView(this.exports.memory.buffer); }
  bytes(ptr, len) {
    const end = ptr + len;
    if (end > this.exports.memory.buffer.byteLength) return null;
    return new Uint8Array(this.exports.memory.buffer, ptr, len).slice();
  }
  str(ptr, len) { return dec.decode(this.bytes(ptr, len)); }
  // Copies `data` into a fresh guest allocation and writes its address and size.
  give(data, ptrPtr, sizePtr) {
    const alloc = this.exports.proxy_on_memory_allocate ?? this.exports.malloc;
    const p = data.length ? alloc(data.length) : 0;
    if (data.length && !p) throw new Error('guest allocation failed');
    new Uint8Array(this.exports.memory.buffer).set(data, p);
    this.mem.setUint32(ptrPtr, p, true);
    this.mem.setUint32(sizePtr, data.length, true);
    return OK;
  }

  hostFunction(module, name) {
    const env = {
      proxy_log: (level, p, n) => { this.logs.push({ level, msg: this.str(p, n) }); return OK; },
      proxy_get_log_level: (p) => { this.mem.setUint32(p, 0, true); return OK; },
      proxy_get_current_time_nanoseconds: (p) => {
        this.mem.setBigUint64(p, BigInt(Date.now()) * 1000000n, true);
        return OK;
      },
      proxy_get_buffer_status: (type, sizePtr, flagsPtr) => {
        if (type !== 7) return NOT_FOUND;
        this.mem.setUint32(sizePtr, this.config.length, true);
        this.mem.setUint32(flagsPtr, 0, true);
        return OK;
      },
      proxy_get_buffer_bytes: (type, start, max, ptrPtr, sizePtr) => {
        if (type !== 7) return NOT_FOUND;
        if (start > this.config.length) return BAD_ARGUMENT;
        return this.give(this.config.subarray(start, start + max), ptrPtr, sizePtr);
      },
      proxy_get_header_map_value: (map, kp, kl, vpp, vlp) => {
        const key = this.str(kp, kl).toLowerCase();
        const hit = this.maps[map]?.find(([k]) => k === key);
        return hit ? this.give(enc.encode(hit[1]), vpp, vlp) : NOT_FOUND;
      },
      proxy_replace_header_map_value: (map, kp, kl, vp, vl) => {
        const key = this.str(kp, kl).toLowerCase();
        const rest = this.maps[map].filter(([k]) => k !== key);
        this.maps[map] = [...rest, [key, this.str(vp, vl)]];
        return OK;
      },
      proxy_add_header_map_value: (map, kp, kl, vp, vl) => {
        this.maps[map].push([this.str(kp, kl).toLowerCase(), this.str(vp, vl)]);
        return OK;
      },
      proxy_remove_header_map_value: (map, kp, kl) => {
        const key = this.str(kp, kl).toLowerCase();
        this.maps[map] = this.maps[map].filter(([k]) => k !== key);
        return OK;
      },
      proxy_get_header_map_pairs: (map, ptrPtr, sizePtr) =>
        this.give(serializePairs(this.maps[map]), ptrPtr, sizePtr),
      proxy_set_header_map_pairs: (map, p, n) => {
        if (this.acceptAnyMap) return OK;
        if (p + n > 2 ** 32) return INVALID_MEMORY_ACCESS;
        const data = this.bytes(p, n);
        if (!data) return INVALID_MEMORY_ACCESS;
        const pairs = parsePairs(data);
        if (!pairs) return BAD_ARGUMENT;
        this.maps[map] = pairs;
        return OK;
      },
      proxy_send_local_response: (status, dp, dl, bp, bl, hp, hl, grpc) => {
        const headers = parsePairs(this.bytes(hp, hl));
        if (!headers) return BAD_ARGUMENT;
        this.localResponse = { status, details: this.str(dp, dl), body: this.str(bp, bl), headers };
        return OK;
      },
      proxy_get_shared_data: (kp, kl, vpp, vlp, casPtr) => {
        const entry = this.shared.map.get(this.str(kp, kl));
        if (!entry) return NOT_FOUND;
        this.mem.setUint32(casPtr, entry.cas, true);
        return this.give(entry.value, vpp, vlp);
      },
      proxy_set_shared_data: (kp, kl, vp, vl, cas) => {
        const key = this.str(kp, kl);
        const entry = this.shared.map.get(key);
        if (cas !== 0 && this.shared.failNextSets > 0) {
          this.shared.failNextSets--;
          // Someone else wrote first: their write bumps the CAS and the count.
          const [w, c] = dec.decode(entry.value).split(' ').map(Number);
          entry.value = enc.encode(`${w} ${c + 1}`);
          entry.cas = this.shared.nextCas++;
          return CAS_MISMATCH;
        }
        if (cas !== 0 && (!entry || entry.cas !== cas)) return CAS_MISMATCH;
        this.shared.map.set(key, { value: this.bytes(vp, vl), cas: this.shared.nextCas++ });
        return OK;
      },
      proxy_define_metric: (type, np, nl, idPtr) => {
        this.metrics ??= [];
        this.metrics.push({ name: this.str(np, nl), value: 0n });
        this.mem.setUint32(idPtr, this.metrics.length, true);
        return OK;
      },
      proxy_increment_metric: (id, delta) => {
        const metric = this.metrics?.[id - 1];
        if (!metric) return NOT_FOUND;
        metric.value += BigInt(delta);
        return OK;
      },
      proxy_get_property: (pp, pl, vpp, vlp) => {
        const path = this.str(pp, pl).split('\0').join('.');
        const v = this.properties[path];
        return v === undefined ? NOT_FOUND : this.give(enc.encode(v), vpp, vlp);
      },
    };
    const wasi = {
      clock_time_get: (id, precision, p) => {
        const ns = id === 1 ? process.hrtime.bigint() : BigInt(Date.now()) * 1000000n;
        this.mem.setBigUint64(p, ns, true);
        return 0;
      },
      random_get: (p, n) => {
        randomFillSync(new Uint8Array(this.exports.memory.buffer, p, n));
        return 0;
      },
      fd_write: (fd, iovs, iovsLen, writtenPtr) => {
        let total = 0;
        for (let i = 0; i < iovsLen; i++) {
          const p = this.mem.getUint32(iovs + i * 8, true);
          const n = this.mem.getUint32(iovs + i * 8 + 4, true);
          this.logs.push({ level: fd === 2 ? 4 : 2, msg: this.str(p, n) });
          total += n;
        }
        this.mem.setUint32(writtenPtr, total, true);
        return 0;
      },
    };
    const table = module === 'env' ? env : module === 'wasi_snapshot_preview1' ? wasi : {};
    const fn = table[name];
    if (!fn) return () => { throw new Error(`unexpected import ${module}.${name}`); };
    // i32 arguments arrive signed; the ABI's are unsigned (pointers, sizes, ids).
    return (...args) => fn(...args.map((a) => (typeof a === 'number' ? a >>> 0 : a)));
  }

  // Runs the plugin's start-up: _initialize, root context, vm start, configure.
  start() {
    this.exports._initialize?.();
    this.rootId = this.nextContext++;
    this.exports.proxy_on_context_create?.(this.rootId, 0);
    if (this.exports.proxy_on_vm_start?.(this.rootId, 0) === 0) return false;
    if (!this.exports.proxy_on_configure) return true;
    return this.exports.proxy_on_configure(this.rootId, this.config.length) === 1;
  }

  // Runs one request through the plugin: request headers, response headers, log, delete.
  request(headers, { responseStatus = '200' } = {}) {
    this.maps = [Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]), [], [], []];
    this.localResponse = null;
    const id = this.nextContext++;
    const x = this.exports;
    x.proxy_on_context_create?.(id, this.rootId);
    const result = { id, action: x.proxy_on_request_headers?.(id, this.maps[0].length, 1) ?? 0 };
    result.requestHeaders = Object.fromEntries(this.maps[0]);
    result.localResponse = this.localResponse;
    if (!this.localResponse) {
      this.maps[2] = [[':status', responseStatus], ['content-type', 'application/json']];
      x.proxy_on_response_headers?.(id, 2, 0);
      result.responseHeaders = Object.fromEntries(this.maps[2]);
    }
    if (!x.proxy_on_done || x.proxy_on_done(id)) x.proxy_on_log?.(id);
    x.proxy_on_delete?.(id);
    return result;
  }
}

const plugin = (name) => join(pluginDir, `${name}.wasm`);
const testModule = (name) => join(testWasmDir, `${name}.wasm`);
const header = (res, name) => Object.fromEntries(res.localResponse.headers)[name];
const tests = [];
const test = (name, fn) => tests.push([name, fn]);

test('auth accepts a configured key as a bearer token or x-api-key', () => {
  const vm = new Vm(plugin('auth'), { config: '{"keys": ["k1", "k\\u00e9y-2"]}' });
  assert.equal(vm.start(), true);
  let r = vm.request({ authorization: 'Bearer k1' });
  assert.equal(r.action, 0);
  assert.equal(r.localResponse, null);
  r = vm.request({ authorization: '  bearer   k\u00e9y-2 ' });
  assert.equal(r.localResponse, null);
  r = vm.request({ 'x-api-key': 'k1' });
  assert.equal(r.localResponse, null);
  r = vm.request({ authorization: 'Basic abc', 'x-api-key': 'k1' });
  assert.equal(r.localResponse, null);
});

test('auth answers 401 in the OpenAI shape for an unknown or missing key', () => {
  const vm = new Vm(plugin('auth'), { config: '{"keys":["k1"]}' });
  assert.equal(vm.start(), true);
  for (const headers of [{ authorization: 'Bearer k2' }, { 'x-api-key': 'k' }, {},
                         { authorization: 'Bearer' }, { authorization: 'Bearerk1' }]) {
    const r = vm.request(headers);
    assert.equal(r.action, 1, JSON.stringify(headers));
    assert.equal(r.localResponse.status, 401);
    assert.equal(r.localResponse.body,
                 '{"error":{"message":"invalid API key","type":"invalid_request_error",' +
                 '"code":"invalid_api_key"}}');
    assert.equal(header(r, 'content-type'), 'application/json');
  }
  assert.equal(vm.logs.filter((l) => l.msg.includes('expose_credentials')).length, 1);
});

test('auth refuses a configuration without keys', () => {
  for (const config of ['', '{}', '{"keys": []}', '{"keys": [1]}', '{"keys": ["a",]}', 'keys']) {
    const vm = new Vm(plugin('auth'), { config });
    assert.equal(vm.start(), false, config);
    assert.ok(vm.logs.some((l) => l.level === 4), config);
  }
});

test('logging adds a request id, logs the request and turns 500 into 503', () => {
  const path = '/v1/chat/completions';
  const vm = new Vm(plugin('logging'),
                    { properties: { 'request.method': 'POST', 'request.path': path } });
  assert.equal(vm.start(), true);
  let r = vm.request({ ':method': 'GET', ':path': '/ignored' }, { responseStatus: '500' });
  const id = r.requestHeaders['x-request-id'];
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(r.responseHeaders[':status'], '503');
  const messages = vm.logs.map((l) => l.msg);
  assert.ok(messages.includes(`request ${id} POST /v1/chat/completions`), messages.join('\n'));
  assert.ok(messages.some((m) => m.includes('upstream answered 500')));
  const done = new RegExp(`^done ${id} status=503 duration_ms=\\d+\\.\\d{3}$`);
  assert.ok(messages.some((m) => done.test(m)),
            messages.join('\n'));

  vm.logs = [];
  r = vm.request({ 'x-request-id': 'abc-123' }, { responseStatus: '404' });
  assert.equal(r.requestHeaders['x-request-id'], 'abc-123');
  assert.equal(r.responseHeaders[':status'], '404');
  assert.ok(vm.logs.some((l) => l.msg.startsWith('done abc-123 status=404')));
});

test('logging keeps per-request state apart for many concurrent streams', () => {
  const vm = new Vm(plugin('logging'));
  assert.equal(vm.start(), true);
  const ids = [];
  for (let i = 0; i < 300; i++) {
    const id = vm.nextContext++;
    vm.maps[0] = [['x-request-id', `req-${i}`]];
    vm.exports.proxy_on_request_headers(id, 1, 1);
    ids.push(id);
  }
  vm.logs = [];
  ids.reverse().forEach((id, i) => {
    vm.maps[2] = [[':status', '200']];
    vm.exports.proxy_on_log(id);
    vm.exports.proxy_on_delete(id);
    assert.match(vm.logs.at(-1).msg, new RegExp(`^done req-${299 - i} `));
  });
});

test('ratelimit counts per key across VMs and answers 429 with retry-after', () => {
  const shared = new SharedData();
  const config = '{"requests_per_minute": 3, "header": "X-Api-Key"}';
  const a = new Vm(plugin('ratelimit'), { config, shared });
  const b = new Vm(plugin('ratelimit'), { config, shared });
  assert.equal(a.start() && b.start(), true);
  const results = [a, b, a].map((vm) => vm.request({ 'x-api-key': 'alice' }));
  assert.ok(results.every((r) => r.localResponse === null));
  const r = b.request({ 'x-api-key': 'alice' });
  assert.equal(r.localResponse.status, 429);
  assert.equal(r.action, 1);
  const retry = Number(header(r, 'retry-after'));
  assert.ok(retry >= 1 && retry <= 60, String(retry));
  assert.equal(header(r, 'x-ratelimit-limit-requests'), '3');
  const body = JSON.parse(r.localResponse.body);
  assert.equal(body.error.code, 'rate_limit_exceeded');
  assert.equal(body.error.type, 'rate_limit_error');
  assert.equal(a.request({ 'x-api-key': 'bob' }).localResponse, null);
  assert.equal(a.request({}).localResponse, null);
  // The key is stored as a digest, never in clear.
  assert.ok([...shared.map.keys()].every((k) => !k.includes('alice')));
});

test('ratelimit retries on CAS mismatch and counts the concurrent writes', () => {
  const shared = new SharedData();
  const vm = new Vm(plugin('ratelimit'), { config: '{"requests_per_minute": 5}', shared });
  assert.equal(vm.start(), true);
  assert.equal(vm.request({ 'x-api-key': 'k' }).localResponse, null);  // count 1
  shared.failNextSets = 2;  // two other workers win the race: count 3
  assert.equal(vm.request({ 'x-api-key': 'k' }).localResponse, null);  // count 4
  assert.equal(vm.request({ 'x-api-key': 'k' }).localResponse, null);  // count 5
  assert.equal(vm.request({ 'x-api-key': 'k' }).localResponse.status, 429);
  const [entry] = shared.map.values();
  assert.match(dec.decode(entry.value), /^\d+ 5$/);
});

test('ratelimit refuses a bad configuration', () => {
  for (const config of ['', '{}', '{"requests_per_minute": 0}', '{"requests_per_minute": "5"}',
                        '{"requests_per_minute": 5, "header": ""}']) {
    assert.equal(new Vm(plugin('ratelimit'), { config }).start(), false, config);
  }
});

test('test_header_append instances append their suffixes in chain order', () => {
  const first = new Vm(plugin('test_header_append'), { config: 'a' });
  const second = new Vm(plugin('test_header_append'), { config: '"b"' });
  const third = new Vm(plugin('test_header_append'), { config: '{"suffix": "c"}' });
  assert.equal(first.start() && second.start() && third.start(), true);
  let headers = { 'x-chain': '>' };
  for (const vm of [first, second, third]) headers = vm.request(headers).requestHeaders;
  assert.equal(headers['x-chain'], '>abc');
  assert.equal(second.request({}).requestHeaders['x-chain'], 'b');
});

test('noop loads and continues on every callback', () => {
  const vm = new Vm(testModule('noop'));
  assert.equal(vm.start(), true);
  assert.equal(vm.request({ a: '1' }).action, 0);
  const x = vm.exports;
  assert.equal(typeof x.proxy_abi_version_0_2_1, 'function');
  const p = x.malloc(100), q = x.proxy_on_memory_allocate(70000);
  assert.ok(p > 0 && q >= p + 100 && q % 8 === 0);
  assert.ok(x.memory.buffer.byteLength >= q + 70000);
  assert.equal(x.malloc(0xfffffff0), 0);
});

test('trap traps in request headers', () => {
  const vm = new Vm(testModule('trap'));
  assert.equal(vm.start(), true);
  assert.throws(() => vm.exports.proxy_on_request_headers(2, 0, 1), WebAssembly.RuntimeError);
});

test('bad_header_map continues when the host refuses every malformed map', () => {
  const vm = new Vm(testModule('bad_header_map'));
  assert.equal(vm.start(), true);
  vm.maps[0] = [['keep', 'me']];
  assert.equal(vm.exports.proxy_on_request_headers(2, 1, 1), 0);
  assert.deepEqual(vm.maps[0], [['keep', 'me']]);
  const broken = new Vm(testModule('bad_header_map'), { acceptAnyMap: true });
  assert.throws(() => broken.exports.proxy_on_request_headers(2, 1, 1), WebAssembly.RuntimeError);
});

test('memory_bomb grows until its capped memory is full, then continues', () => {
  // Capped like a host does it (uncapped, V8 grows it to 4 GiB, which takes seconds).
  const vm = new Vm(testModule('memory_bomb'), { maxPages: 16 * 64 + 2 });  // 64 MiB + 2 pages
  assert.equal(vm.start(), true);
  assert.equal(vm.exports.proxy_on_request_headers(2, 0, 1), 0);
  assert.equal(vm.exports.memory_pages(), 16 * 64 + 2);
});

test('no_abi exports no proxy_abi_version marker', () => {
  const module = new WebAssembly.Module(readFileSync(testModule('no_abi')));
  const names = WebAssembly.Module.exports(module).map((e) => e.name);
  assert.ok(names.includes('proxy_on_request_headers'));
  assert.ok(!names.some((n) => n.startsWith('proxy_abi_version')));
});

test('infinite_loop never returns from request headers', async () => {
  const worker = new Worker(`
    const { workerData, parentPort } = require('node:worker_threads');
    const m = new WebAssembly.Instance(new WebAssembly.Module(workerData), {});
    parentPort.postMessage('started');
    m.exports.proxy_on_request_headers(2, 0, 1);
    parentPort.postMessage('returned');`,
    { eval: true, workerData: readFileSync(testModule('infinite_loop')) });
  const messages = [];
  worker.on('message', (m) => messages.push(m));
  await new Promise((resolve) => setTimeout(resolve, 300));
  await worker.terminate();
  assert.deepEqual(messages, ['started']);
});

let failed = 0;
for (const [name, fn] of tests) {
  try {
    const started = Date.now();
    await fn();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n${e.stack}`);
  }
}
console.log(`${tests.length - failed}/${tests.length} passed`);
process.exit(failed ? 1 : 0);
