// The official `openai` npm client, pointed at the gateway, works as it does against OpenAI:
// plain and streamed chat, legacy completions, embeddings, models and errors.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { mockText, simpleConfig, startGateway, startMock } from './lib/harness.js';

const TOKENS = 12;

describe('openai client', { timeout: 60_000 }, () => {
  let gw;
  let client;

  before(async () => {
    const mock = await startMock({ tokens: TOKENS, tokenDelayMs: 5 });
    gw = await startGateway({
      ...simpleConfig([mock]),
      routes: [{ name: 'gpt', models: ['gpt-*', 'text-embedding-3-small'], provider: 'mock' }],
    });
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 10_000 });
  });

  after(async () => {
    await gw?.stop();
  });

  test('chat.completions.create', async () => {
    const completion = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Say something' }],
    });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, 'gpt-4o-mini');
    assert.equal(completion.choices[0].message.content, mockText(TOKENS));
    assert.equal(completion.choices[0].finish_reason, 'stop');
  });

  test('chat.completions.create with stream: true', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Say something' }],
      stream: true,
    });
    let content = '';
    let chunks = 0;
    let finish;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      content += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(content, mockText(TOKENS));
    assert.ok(chunks >= TOKENS);
    assert.equal(finish, 'stop');
  });

  test('chat.completions.stream helper returns the final message', async () => {
    const runner = client.chat.completions.stream({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Say something' }],
    });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, mockText(TOKENS));
  });

  test('completions.create (legacy)', async () => {
    const completion = await client.completions.create({
      model: 'gpt-3.5-turbo-instruct',
      prompt: 'Hello',
    });
    assert.equal(completion.choices[0].text, mockText(TOKENS));
  });

  test('embeddings.create', async () => {
    const result = await client.embeddings.create({
      model: 'text-embedding-3-small',
      input: ['first text', 'second text'],
    });
    assert.equal(result.data.length, 2);
    for (const [i, item] of result.data.entries()) {
      assert.equal(item.index, i);
      assert.ok(item.embedding.length > 0);
      assert.ok(item.embedding.every((x) => typeof x === 'number' && Number.isFinite(x)));
    }
    assert.notDeepEqual(result.data[0].embedding, result.data[1].embedding);
  });

  test("models.list includes the routes' exact model names", async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.ok(ids.includes('text-embedding-3-small'), `ids: ${ids}`);
    assert.ok(!ids.includes('gpt-*'));
  });

  test('an unknown model raises NotFoundError with the error code', async () => {
    await assert.rejects(
      client.chat.completions.create({
        model: 'claude-3',
        messages: [{ role: 'user', content: 'x' }],
      }),
      (err) => {
        assert.ok(err instanceof OpenAI.NotFoundError, `${err.constructor.name}: ${err.message}`);
        assert.equal(err.status, 404);
        assert.equal(err.code, 'model_not_found');
        return true;
      },
    );
  });

  test('responses carry x-request-id (as _request_id)', async () => {
    const completion = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.ok(completion._request_id, 'openai client found no x-request-id header');
  });
});
