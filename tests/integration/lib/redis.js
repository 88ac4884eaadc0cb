// A real redis-server per test, killed with the test process, and a one-command RESP client.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { after } from 'node:test';

import { waitFor } from './harness.js';

const redisServers = new Set();
after(() => {
  for (const r of redisServers) r.kill('SIGKILL');
});
process.on('exit', () => {
  for (const r of redisServers) r.kill('SIGKILL');
});

// One RESP command over a fresh connection; resolves with the raw reply text.
export function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const timer = setTimeout(() => socket.destroy(new Error('redis command timed out')), 1000);
    socket.on('connect', () => {
      let text = `*${args.length}\r\n`;
      for (const a of args) text += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
      socket.write(text);
    });
    socket.on('data', (d) => {
      reply += d.toString();
      // A bulk string ends after its second CRLF; the rest after the first.
      const complete = reply.startsWith('$') && !reply.startsWith('$-1')
        ? reply.split('\r\n').length >= 3
        : reply.endsWith('\r\n');
      if (complete) {
        clearTimeout(timer);
        socket.destroy();
        resolve(reply);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

// Starts redis-server on `port` (no persistence) and waits until it answers PING.
export async function startRedis(port) {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  redisServers.add(child);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.on('exit', () => redisServers.delete(child));
  await waitFor(async () => (await redisCommand(port, 'PING')) === '+PONG\r\n', {
    timeoutMs: 5000,
    what: `redis-server on port ${port}`,
  }).catch((err) => {
    throw new Error(`${err.message}\n--- redis-server output ---\n${output}`);
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
