// OpenAI ⇄ Anthropic translation end to end (issue 3), with the official SDKs as clients:
// the Anthropic SDK through sluice's /v1/messages to an OpenAI-dialect upstream, the OpenAI SDK
// through /v1/chat/completions to an Anthropic upstream, and Anthropic pass-through (Claude Code).
// The upstream is the mock, which answers each dialect natively (text "tok0 tok1 ...", and a
// get_weather tool call with {"city":"Paris"} when the last user message mentions the weather).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import {
  fetchWithTimeout,
  mockText,
  postJson,
  readSse,
  startGateway,
  startMock,
} from './lib/harness.js';

const TOKENS = 7;
const OPENAI_KEY = 'sk-upstream-openai-5b2c';
const ANTHROPIC_KEY = 'sk-ant-upstream-91fd';

const WEATHER_SCHEMA = {
  type: 'object',
  properties: { city: { type: 'string', description: 'City name' } },
  required: ['city'],
};
const ANTHROPIC_TOOL = {
  name: 'get_weather',
  description: 'Current weather of a city',
  input_schema: WEATHER_SCHEMA,
};
const OPENAI_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: WEATHER_SCHEMA,
  },
};

let mock;
let gw;

before(async () => {
  mock = await startMock({ tokens: TOKENS, requireKeys: [OPENAI_KEY, ANTHROPIC_KEY] });
  gw = await startGateway({
    threads: 2,
    providers: [
      {
        id: 'openai-upstream',
        type: 'openai',
        endpoints: [mock.url],
        api_tokens: [OPENAI_KEY],
        model_mapping: { 'claude-via-openai': 'gpt-upstream' },
      },
      {
        id: 'anthropic-upstream',
        type: 'anthropic',
        endpoints: [mock.url],
        api_tokens: [ANTHROPIC_KEY],
        model_mapping: {
          'gpt-via-anthropic': 'claude-upstream',
          'claude-direct': 'claude-direct-upstream',
        },
      },
    ],
    routes: [
      { models: ['claude-via-openai'], provider: 'openai-upstream' },
      { models: ['gpt-via-anthropic', 'claude-direct'], provider: 'anthropic-upstream' },
    ],
  });
});

after(() => {
  const output = gw.stdoutLines.join('\n') + gw.stderr;
  for (const key of [OPENAI_KEY, ANTHROPIC_KEY]) assert.ok(!output.includes(key), 'token logged');
});

async function lastUpstream() {
  const last = await mock.last();
  return { ...last, json: JSON.parse(last.body) };
}

describe('Anthropic SDK → sluice → OpenAI-dialect upstream', { timeout: 60_000 }, () => {
  const MODEL = 'claude-via-openai';
  let client;

  before(() => {
    client = new Anthropic({
      baseURL: gw.url,
      apiKey: 'client-key',
      maxRetries: 0,
      timeout: 10_000,
    });
  });

  test('non-streaming text, usage, model name', async () => {
    const message = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      messages: [{ role: 'user', content: 'Say something' }],
    });
    assert.equal(message.type, 'message');
    assert.equal(message.role, 'assistant');
    assert.equal(message.model, MODEL);
    assert.equal(message.content.length, 1);
    assert.equal(message.content[0].type, 'text');
    assert.equal(message.content[0].text, mockText(TOKENS));
    assert.equal(message.stop_reason, 'end_turn');
    assert.ok(message.usage.input_tokens > 0, JSON.stringify(message.usage));
    assert.equal(message.usage.output_tokens, TOKENS);

    const upstream = await lastUpstream();
    assert.equal(upstream.target, '/v1/chat/completions');
    assert.equal(upstream.headers.authorization, `Bearer ${OPENAI_KEY}`);
    assert.equal(upstream.headers['x-api-key'], undefined, 'the client key is not forwarded');
    assert.equal(upstream.headers['anthropic-version'], undefined);
    assert.equal(upstream.json.model, 'gpt-upstream');
    assert.deepEqual(
      upstream.json.messages.map((m) => m.role),
      ['user'],
    );
  });

  test('cached prompt tokens become cache_read_input_tokens', async () => {
    const CACHED = 30;
    const params = { model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] };
    const options = { headers: { 'x-mock-cached-tokens': String(CACHED) } };
    const message = await client.messages.create(params, options);
    // The mock's prompt_tokens (which include the cached ones, as OpenAI counts them).
    const body = (await mock.last()).body;
    const promptTokens = Math.max(1, Math.floor(Buffer.byteLength(body) / 4), CACHED);
    assert.equal(message.usage.cache_read_input_tokens, CACHED, JSON.stringify(message.usage));
    assert.equal(message.usage.input_tokens, promptTokens - CACHED, 'input_tokens excludes cached');
    assert.equal(message.usage.output_tokens, TOKENS);

    const streamed = await client.messages.stream(params, options).finalMessage();
    assert.equal(streamed.usage.cache_read_input_tokens, CACHED, JSON.stringify(streamed.usage));
    assert.equal(streamed.usage.output_tokens, TOKENS);
  });

  test('max_tokens stops the answer with stop_reason max_tokens', async () => {
    const message = await client.messages.create({
      model: MODEL,
      max_tokens: 3,
      messages: [{ role: 'user', content: 'Say something' }],
    });
    assert.equal(message.content[0].text, mockText(3));
    assert.equal(message.stop_reason, 'max_tokens');
  });

  test('the system prompt and multi-part content are forwarded', async () => {
    await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      system: 'You are terse.',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'first part' },
            { type: 'text', text: 'second part' },
          ],
        },
      ],
    });
    const { json } = await lastUpstream();
    assert.equal(json.messages[0].role, 'system');
    assert.match(JSON.stringify(json.messages[0].content), /You are terse\./);
    assert.equal(json.messages[1].role, 'user');
    const userText = JSON.stringify(json.messages[1].content);
    assert.match(userText, /first part/);
    assert.match(userText, /second part/);
  });

  test('streaming: event sequence, assembled text, stop reason and usage', async () => {
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 100,
      messages: [{ role: 'user', content: 'Say something' }],
    });
    const events = [];
    stream.on('streamEvent', (event) => events.push(event));
    const message = await stream.finalMessage();
    assert.equal(message.content[0].text, mockText(TOKENS));
    assert.equal(message.model, MODEL);
    assert.equal(message.stop_reason, 'end_turn');
    assert.equal(message.usage.output_tokens, TOKENS);
    assert.ok(message.usage.input_tokens > 0);

    const types = events.map((e) => e.type);
    assert.equal(types[0], 'message_start');
    assert.equal(types.at(-1), 'message_stop');
    for (const type of ['content_block_start', 'content_block_delta', 'content_block_stop']) {
      assert.ok(types.includes(type), `${type} in ${types}`);
    }
    assert.equal(types.filter((t) => t === 'content_block_delta').length >= 1, true);
    const delta = events.find((e) => e.type === 'message_delta');
    assert.ok(delta, `message_delta in ${types}`);
    assert.equal(delta.delta.stop_reason, 'end_turn');
    assert.equal(delta.usage.output_tokens, TOKENS);
    assert.equal(events[0].message.model, MODEL);
    assert.ok(
      types.indexOf('message_delta') > types.lastIndexOf('content_block_stop'),
      'message_delta comes after the last content_block_stop',
    );
    assert.equal((await lastUpstream()).json.stream, true);
  });

  test('streaming on the wire: each SSE event is named after its type', async () => {
    const res = await fetchWithTimeout(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({
        model: MODEL,
        max_tokens: 100,
        stream: true,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const events = [];
    for await (const e of readSse(res)) events.push(e);
    assert.ok(events.length >= TOKENS + 5);
    for (const e of events) {
      assert.notEqual(e.data, '[DONE]', 'no OpenAI terminator in an Anthropic stream');
      assert.equal(JSON.parse(e.data).type, e.event, `event: ${e.event} / data: ${e.data}`);
    }
    const text = events
      .filter((e) => e.event === 'content_block_delta')
      .map((e) => JSON.parse(e.data).delta.text)
      .join('');
    assert.equal(text, mockText(TOKENS));
  });

  async function weatherToolUse(stream) {
    const params = {
      model: MODEL,
      max_tokens: 200,
      tools: [ANTHROPIC_TOOL],
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
    };
    const message = stream
      ? await client.messages.stream(params).finalMessage()
      : await client.messages.create(params);
    assert.equal(message.stop_reason, 'tool_use');
    const tool = message.content.find((b) => b.type === 'tool_use');
    assert.ok(tool, JSON.stringify(message.content));
    assert.equal(tool.name, 'get_weather');
    assert.deepEqual(tool.input, { city: 'Paris' });
    assert.equal(typeof tool.id, 'string');
    assert.ok(tool.id.length > 0);

    const { json } = await lastUpstream();
    assert.equal(json.tools.length, 1);
    assert.equal(json.tools[0].type, 'function');
    assert.equal(json.tools[0].function.name, 'get_weather');
    assert.deepEqual(json.tools[0].function.parameters, WEATHER_SCHEMA);
    return { params, message, tool };
  }

  test('tool use (non-streaming)', async () => {
    await weatherToolUse(false);
  });

  test('tool use (streaming): input_json_delta assembled by the SDK', async () => {
    await weatherToolUse(true);
  });

  // The stream a native Anthropic server sends for the same request (the mock's own /v1/messages)
  // and the translated one agree event for event, apart from ids, the model name, token counts
  // of the prompt (the two upstream bodies differ) and ping placement.
  for (const [what, content] of [
    ['text', 'Say something'],
    ['tool use', 'What is the weather in Paris?'],
  ]) {
    test(`streamed ${what} matches what a native Anthropic server sends`, async () => {
      const body = {
        max_tokens: 200,
        stream: true,
        tools: [ANTHROPIC_TOOL],
        messages: [{ role: 'user', content }],
      };
      const read = async (url, headers, model) => {
        const res = await fetchWithTimeout(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'anthropic-version': '2023-06-01',
            ...headers,
          },
          body: JSON.stringify({ ...body, model }),
        });
        assert.equal(res.status, 200);
        const events = [];
        for await (const e of readSse(res)) {
          if (e.event === 'ping') continue;
          const data = JSON.parse(e.data);
          assert.equal(data.type, e.event);
          events.push(data);
        }
        return events;
      };
      const native = await read(`${mock.url}/v1/messages`, { 'x-api-key': ANTHROPIC_KEY }, MODEL);
      const translated = await read(`${gw.url}/v1/messages`, {}, MODEL);
      const normalise = (events) =>
        events.map((e) => {
          const copy = structuredClone(e);
          if (copy.message) {
            copy.message.id = 'ID';
            copy.message.usage.input_tokens = 'N';
          }
          if (copy.content_block?.id) copy.content_block.id = 'ID';
          // message_delta usage may repeat the input counts (the API does so today; the mock
          // sends output_tokens only): compared below.
          if (copy.type === 'message_delta')
            copy.usage = { output_tokens: copy.usage.output_tokens };
          return copy;
        });
      assert.deepEqual(normalise(translated), normalise(native));
      const deltaUsage = translated.find((e) => e.type === 'message_delta').usage;
      for (const [key, value] of Object.entries(deltaUsage)) {
        assert.ok(
          [
            'input_tokens',
            'output_tokens',
            'cache_read_input_tokens',
            'cache_creation_input_tokens',
          ].includes(key),
          `unexpected message_delta usage field ${key}`,
        );
        assert.ok(Number.isInteger(value) && value >= 0, `${key}: ${value}`);
      }
      // An OpenAI upstream reports the prompt tokens only at the end of its stream: they reach the
      // client in message_delta (message_start cannot know them without buffering).
      assert.ok(
        translated[0].message.usage.input_tokens > 0 || deltaUsage.input_tokens > 0,
        'the input tokens reach the client',
      );
      assert.match(translated[0].message.id, /^msg_/);
      if (what === 'tool use') assert.match(translated[1].content_block.id, /^toolu_|^call_/);
    });
  }

  test('tool results go back upstream as tool messages', async () => {
    const { params, message, tool } = await weatherToolUse(false);
    const answer = await client.messages.create({
      ...params,
      messages: [
        ...params.messages,
        { role: 'assistant', content: message.content },
        {
          role: 'user',
          content: [{ type: 'tool_result', tool_use_id: tool.id, content: 'Sunny, 21 °C' }],
        },
      ],
    });
    assert.equal(answer.stop_reason, 'end_turn');
    assert.equal(answer.content[0].text, mockText(TOKENS));
    const { json } = await lastUpstream();
    const assistant = json.messages.find((m) => m.role === 'assistant');
    assert.ok(assistant?.tool_calls, JSON.stringify(json.messages));
    assert.equal(assistant.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(assistant.tool_calls[0].function.arguments), { city: 'Paris' });
    const result = json.messages.find((m) => m.role === 'tool');
    assert.ok(result, JSON.stringify(json.messages));
    assert.equal(result.tool_call_id, assistant.tool_calls[0].id);
    assert.match(JSON.stringify(result.content), /Sunny, 21 °C/);
  });

  test('errors in the Anthropic shape: unknown model → 404 not_found_error', async () => {
    const res = await postJson(
      `${gw.url}/v1/messages`,
      { model: 'no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'anthropic-version': '2023-06-01' } },
    );
    assert.equal(res.status, 404);
    assert.equal(res.json?.type, 'error', res.text);
    assert.equal(res.json.error.type, 'not_found_error');
    assert.equal(typeof res.json.error.message, 'string');

    await assert.rejects(
      client.messages.create({
        model: 'no-such-model',
        max_tokens: 10,
        messages: [{ role: 'user', content: 'hi' }],
      }),
      (err) => err instanceof Anthropic.NotFoundError && err.status === 404,
    );
  });

  test('an upstream OpenAI error reaches the client in the Anthropic shape', async () => {
    const res = await postJson(
      `${gw.url}/v1/messages`,
      { model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'anthropic-version': '2023-06-01', 'x-mock-status': '429' } },
    );
    assert.equal(res.status, 429);
    assert.equal(res.json?.type, 'error', res.text);
    assert.equal(res.json.error.type, 'rate_limit_error');
    assert.equal(res.json.error.message, 'status forced by x-mock-status');
  });
});

describe('OpenAI SDK → sluice → Anthropic upstream', { timeout: 60_000 }, () => {
  const MODEL = 'gpt-via-anthropic';
  let client;

  before(() => {
    client = new OpenAI({
      baseURL: `${gw.url}/v1`,
      apiKey: 'client-key',
      maxRetries: 0,
      timeout: 10_000,
    });
  });

  test('non-streaming text, usage, system prompt, max_tokens default', async () => {
    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Say something' },
      ],
    });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, MODEL);
    assert.equal(completion.choices[0].message.role, 'assistant');
    assert.equal(completion.choices[0].message.content, mockText(TOKENS));
    assert.equal(completion.choices[0].finish_reason, 'stop');
    assert.ok(completion.usage.prompt_tokens > 0);
    assert.equal(completion.usage.completion_tokens, TOKENS);
    assert.equal(
      completion.usage.total_tokens,
      completion.usage.prompt_tokens + completion.usage.completion_tokens,
    );

    const upstream = await lastUpstream();
    assert.equal(upstream.target, '/v1/messages');
    assert.equal(upstream.headers['x-api-key'], ANTHROPIC_KEY);
    assert.equal(upstream.headers['anthropic-version'], '2023-06-01');
    assert.equal(upstream.headers.authorization, undefined, 'the client key is not forwarded');
    assert.equal(upstream.json.model, 'claude-upstream');
    assert.ok(Number.isInteger(upstream.json.max_tokens) && upstream.json.max_tokens > 0);
    assert.match(JSON.stringify(upstream.json.system), /You are terse\./);
    assert.deepEqual(
      upstream.json.messages.map((m) => m.role),
      ['user'],
      'the system message moves to the system field',
    );
  });

  test('cached prompt tokens are reported as prompt_tokens_details.cached_tokens', async () => {
    const completion = await client.chat.completions.create(
      { model: MODEL, messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-mock-cached-tokens': '40' } },
    );
    assert.equal(completion.usage.prompt_tokens_details?.cached_tokens, 40);
    // The mock's input_tokens (without the cached ones, as Anthropic counts them).
    const body = (await mock.last()).body;
    const inputTokens = Math.max(1, Math.floor(Buffer.byteLength(body) / 4));
    assert.equal(completion.usage.prompt_tokens, inputTokens + 40, 'prompt_tokens includes cached');
  });

  test('max_tokens stops the answer with finish_reason length', async () => {
    const completion = await client.chat.completions.create({
      model: MODEL,
      max_tokens: 2,
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(completion.choices[0].message.content, mockText(2));
    assert.equal(completion.choices[0].finish_reason, 'length');
    assert.equal((await lastUpstream()).json.max_tokens, 2);
  });

  test('streaming with include_usage: text, finish_reason, usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Say something' }],
    });
    let text = '';
    const chunks = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      assert.equal(chunk.object, 'chat.completion.chunk');
      assert.equal(chunk.model, MODEL);
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    assert.equal(text, mockText(TOKENS));
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.equal(finish.length, 1);
    assert.equal(finish[0].choices[0].finish_reason, 'stop');
    const usage = chunks.at(-1);
    assert.deepEqual(usage.choices, [], 'the usage chunk comes last, without choices');
    assert.equal(usage.usage.completion_tokens, TOKENS);
    assert.ok(usage.usage.prompt_tokens > 0);
    assert.equal((await lastUpstream()).json.stream, true);
  });

  test('streaming without include_usage: no usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      stream: true,
      messages: [{ role: 'user', content: 'Say something' }],
    });
    let text = '';
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      assert.ok(!chunk.usage, `unexpected usage: ${JSON.stringify(chunk)}`);
      assert.ok(chunk.choices.length === 1, `a chunk without choices: ${JSON.stringify(chunk)}`);
    }
    assert.equal(text, mockText(TOKENS));
  });

  const weatherParams = {
    model: MODEL,
    tools: [OPENAI_TOOL],
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
  };

  test('tool calls (non-streaming)', async () => {
    const completion = await client.chat.completions.create(weatherParams);
    const choice = completion.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    const call = choice.message.tool_calls?.[0];
    assert.ok(call, JSON.stringify(choice.message));
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
    assert.ok(call.id.length > 0);

    const { json } = await lastUpstream();
    assert.equal(json.tools[0].name, 'get_weather');
    assert.deepEqual(json.tools[0].input_schema, WEATHER_SCHEMA);
  });

  test('tool calls (streaming): arguments assembled from the chunks', async () => {
    const stream = await client.chat.completions.create({
      ...weatherParams,
      stream: true,
      stream_options: { include_usage: true },
    });
    const calls = [];
    let finish;
    let usage;
    for await (const chunk of stream) {
      usage = chunk.usage ?? usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      finish = choice.finish_reason ?? finish;
      for (const delta of choice.delta?.tool_calls ?? []) {
        const call = (calls[delta.index] ??= { id: '', name: '', arguments: '' });
        if (delta.id) call.id = delta.id;
        if (delta.function?.name) call.name += delta.function.name;
        if (delta.function?.arguments) call.arguments += delta.function.arguments;
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(calls.length, 1);
    assert.equal(calls[0].name, 'get_weather');
    assert.ok(calls[0].id.length > 0);
    assert.deepEqual(JSON.parse(calls[0].arguments), { city: 'Paris' });
    assert.ok(usage?.completion_tokens > 0, 'usage with include_usage');
  });

  test('chat.completions.stream helper: final message with the tool call', async () => {
    const runner = client.chat.completions.stream(weatherParams);
    const final = await runner.finalChatCompletion();
    const call = final.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
  });

  test('tool results go back upstream as tool_result blocks', async () => {
    const first = await client.chat.completions.create(weatherParams);
    const message = first.choices[0].message;
    const answer = await client.chat.completions.create({
      ...weatherParams,
      messages: [
        ...weatherParams.messages,
        message,
        { role: 'tool', tool_call_id: message.tool_calls[0].id, content: 'Sunny, 21 °C' },
      ],
    });
    assert.equal(answer.choices[0].message.content, mockText(TOKENS));
    assert.equal(answer.choices[0].finish_reason, 'stop');

    const { json } = await lastUpstream();
    const assistant = json.messages.find((m) => m.role === 'assistant');
    const toolUse = assistant?.content?.find?.((b) => b.type === 'tool_use');
    assert.ok(toolUse, JSON.stringify(json.messages));
    assert.equal(toolUse.name, 'get_weather');
    assert.deepEqual(toolUse.input, { city: 'Paris' });
    const last = json.messages.at(-1);
    assert.equal(last.role, 'user');
    const result = last.content.find((b) => b.type === 'tool_result');
    assert.ok(result, JSON.stringify(last));
    assert.equal(result.tool_use_id, toolUse.id);
    assert.match(JSON.stringify(result.content), /Sunny, 21 °C/);
  });

  test('errors in the OpenAI shape', async () => {
    await assert.rejects(
      client.chat.completions.create({
        model: 'no-such-model',
        messages: [{ role: 'user', content: 'hi' }],
      }),
      (err) => err instanceof OpenAI.NotFoundError && err.status === 404,
    );
    const res = await postJson(
      `${gw.url}/v1/chat/completions`,
      { model: MODEL, messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-mock-status': '429' } },
    );
    assert.equal(res.status, 429);
    assert.equal(typeof res.json?.error?.message, 'string', res.text);
    assert.equal(res.json.error.message, 'status forced by x-mock-status');
    assert.equal(res.json.type, undefined, 'not the Anthropic shape');
  });
});

describe('Anthropic SDK → sluice → Anthropic upstream (pass-through)', { timeout: 60_000 }, () => {
  const MODEL = 'claude-direct';
  let client;

  before(() => {
    client = new Anthropic({
      baseURL: gw.url,
      apiKey: 'client-key',
      maxRetries: 0,
      timeout: 10_000,
      defaultHeaders: { 'anthropic-beta': 'fine-grained-tool-streaming-2025-05-14' },
    });
  });

  const params = {
    model: MODEL,
    max_tokens: 321,
    system: [{ type: 'text', text: 'You are Claude Code.', cache_control: { type: 'ephemeral' } }],
    tools: [ANTHROPIC_TOOL],
    metadata: { user_id: 'user-1' },
    messages: [{ role: 'user', content: [{ type: 'text', text: 'List the files' }] }],
  };

  test('the body is forwarded as is, apart from the model mapping', async () => {
    const message = await client.messages.create(params);
    assert.equal(message.model, MODEL, 'the client sees the name it asked for');
    assert.equal(message.content[0].text, mockText(TOKENS));
    const upstream = await lastUpstream();
    assert.equal(upstream.target, '/v1/messages');
    assert.deepEqual(upstream.json, { ...params, model: 'claude-direct-upstream' });
    assert.equal(upstream.headers['x-api-key'], ANTHROPIC_KEY);
    assert.equal(upstream.headers['anthropic-version'], '2023-06-01');
    assert.equal(upstream.headers['anthropic-beta'], 'fine-grained-tool-streaming-2025-05-14');
  });

  test('streamed tool use through the SDK', async () => {
    const stream = client.messages.stream({
      ...params,
      messages: [{ role: 'user', content: 'And the weather in Paris?' }],
    });
    const types = [];
    stream.on('streamEvent', (event) => types.push(event.type));
    const message = await stream.finalMessage();
    assert.equal(message.model, MODEL);
    assert.equal(message.stop_reason, 'tool_use');
    assert.deepEqual(message.content, [
      { type: 'tool_use', id: 'toolu_mock_1', name: 'get_weather', input: { city: 'Paris' } },
    ]);
    // (The SDK does not surface ping events.)
    assert.deepEqual(types, [
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    const upstream = await lastUpstream();
    assert.equal(upstream.json.model, 'claude-direct-upstream');
    assert.equal(upstream.json.stream, true);
  });

  test('streamed events are relayed one for one, ping included', async () => {
    const body = {
      ...params,
      stream: true,
      messages: [{ role: 'user', content: 'And the weather in Paris?' }],
    };
    const read = async (url, headers, model) => {
      const res = await fetchWithTimeout(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'anthropic-version': '2023-06-01',
          ...headers,
        },
        body: JSON.stringify({ ...body, model }),
      });
      assert.equal(res.status, 200);
      const events = [];
      for await (const e of readSse(res)) events.push({ event: e.event, data: JSON.parse(e.data) });
      return events;
    };
    const direct = await read(
      `${mock.url}/v1/messages`,
      { 'x-api-key': ANTHROPIC_KEY },
      'claude-direct-upstream',
    );
    const relayed = await read(`${gw.url}/v1/messages`, {}, MODEL);
    assert.ok(relayed.some((e) => e.event === 'ping'));
    // Only the message id (a counter in the mock) and the model name may differ.
    direct[0].data.message.id = relayed[0].data.message.id;
    direct[0].data.message.model = MODEL;
    assert.deepEqual(relayed, direct);
  });

  test('upstream errors keep the Anthropic shape', async () => {
    await assert.rejects(
      client.messages.create(params, { headers: { 'x-mock-status': '529' } }),
      (err) => err.status === 529 && err.error?.error?.type === 'overloaded_error',
    );
  });
});
