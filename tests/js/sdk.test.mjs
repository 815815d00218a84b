// hestia serve through the official openai SDK (driven by tests/integration/serve_sdk.sh,
// which starts the servers and passes their addresses):
//   HS_OPEN_URL     an open server (no keys) serving HS_MODEL
//   HS_KEYED_URL    a server with one key, HS_KEY
//   HS_LIMITED_URL  a server limited to HS_LIMIT_RPM requests per minute per address
//   HS_MODEL        the model's name (its file stem)
//   HS_AGENT        (optional) an agent of the open server, with a JSON schema of
//                   {risk_level: low|high, actions: [string]}
//   HS_SCHEMAS      components.schemas of OpenAI's openapi.yaml as JSON (optional: without
//                   it the shape checks fall back to required keys written here)
// Every response body is checked against the OpenAPI schema of its endpoint. Prints
// "ok"/"FAIL" per test and exits 1 when any failed.
import fs from 'node:fs';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { SchemaSet } from './schema.mjs';

const env = (k, d) => process.env[k] ?? d;
const URL_OPEN = env('HS_OPEN_URL');
const URL_KEYED = env('HS_KEYED_URL');
const KEY = env('HS_KEY');
const URL_LIMITED = env('HS_LIMITED_URL');
const LIMIT_RPM = Number(env('HS_LIMIT_RPM', '2'));
const MODEL = env('HS_MODEL');
if (!URL_OPEN || !MODEL) {
    console.error('sdk.test: HS_OPEN_URL and HS_MODEL are required');
    process.exit(2);
}

let schemas = null;
if (process.env.HS_SCHEMAS) schemas = new SchemaSet(JSON.parse(fs.readFileSync(process.env.HS_SCHEMAS, 'utf8')));

// maxRetries 0: the SDK would otherwise retry 429s and 5xx and hide them.
const client = (base, apiKey = 'none') => new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: 60000 });
const open = client(URL_OPEN);

function conforms(value, name) {
    if (!schemas) return;
    const errors = schemas.validate(value, name);
    assert.deepEqual(errors, [], `${name}: ${errors.slice(0, 8).join('\n  ')}\nbody: ${JSON.stringify(value).slice(0, 600)}`);
}

async function raw(base, path, body, headers = {}) {
    const r = await fetch(`${base}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* streams and errors are checked by the caller */ }
    return { status: r.status, headers: r.headers, text, json };
}

// "data: ...\n\n" events of an SSE body; every event must be data lines only.
function sseEvents(text) {
    assert.ok(text.endsWith('\n\n'), 'an SSE body ends with a blank line');
    return text.slice(0, -2).split('\n\n').map((ev) => {
        const lines = ev.split('\n');
        for (const l of lines) assert.ok(l.startsWith('data: ') || l.startsWith(':'), `SSE line: ${JSON.stringify(l)}`);
        return lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
    }).filter((d) => d !== '');
}

function norm(v) {
    return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

const chatMessages = [
    { role: 'system', content: 'You are a storyteller.' },
    { role: 'user', content: 'Tell me a story about a cat.' },
];

// ---- models ----
test('models.list lists the model under its name', async () => {
    const page = await open.models.list();
    const ids = page.data.map((m) => m.id);
    assert.ok(ids.includes(MODEL), `ids ${JSON.stringify(ids)} include ${MODEL}`);
    for (const m of page.data) {
        assert.equal(m.object, 'model');
        assert.equal(typeof m.created, 'number');
        assert.equal(typeof m.owned_by, 'string');
    }
    const r = await raw(URL_OPEN, '/v1/models');
    assert.equal(r.status, 200);
    conforms(r.json, 'ListModelsResponse');
    assert.equal(r.json.object, 'list');
});

// ---- chat ----
let chatGreedy = null; // the non-streamed greedy answer, compared with the streamed one
test('chat.completions.create: shape, usage, x-request-id == id', async () => {
    const { data, response } = await open.chat.completions
        .create({ model: MODEL, messages: chatMessages, max_tokens: 12, temperature: 0, user: 'e2e-sdk' })
        .withResponse();
    conforms(JSON.parse(JSON.stringify(data)), 'CreateChatCompletionResponse');
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.model, MODEL);
    assert.equal(response.headers.get('x-request-id'), data.id);
    assert.equal(data.choices.length, 1);
    const c = data.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.ok(['stop', 'length'].includes(c.finish_reason));
    const u = data.usage;
    assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0 && u.completion_tokens <= 12, JSON.stringify(u));
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    if (c.finish_reason === 'length') assert.equal(u.completion_tokens, 12);
    chatGreedy = data;
});

test('the model answers to "default" as well', async () => {
    const r = await open.chat.completions.create({ model: 'default', messages: chatMessages, max_tokens: 12, temperature: 0 });
    assert.equal(r.choices[0].message.content, chatGreedy.choices[0].message.content);
});

test('a client x-request-id is echoed as the header and the body id', async () => {
    const id = `e2e-echo-${process.pid}`;
    const { data, response } = await open.chat.completions
        .create({ model: MODEL, messages: chatMessages, max_tokens: 2, temperature: 0 }, { headers: { 'x-request-id': id } })
        .withResponse();
    assert.equal(response.headers.get('x-request-id'), id);
    assert.equal(data.id, id);
});

test('chat streaming with include_usage: chunks, usage last, same text as unstreamed', async () => {
    const stream = await open.chat.completions.create({
        model: MODEL, messages: chatMessages, max_tokens: 12, temperature: 0,
        stream: true, stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const ch of stream) chunks.push(JSON.parse(JSON.stringify(ch)));
    assert.ok(chunks.length >= 2, `${chunks.length} chunks`);
    for (const ch of chunks) {
        conforms(ch, 'CreateChatCompletionStreamResponse');
        assert.equal(ch.object, 'chat.completion.chunk');
        assert.equal(ch.id, chunks[0].id);
        assert.equal(ch.model, MODEL);
    }
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, [], 'the usage chunk has no choices');
    assert.ok(last.usage, 'the last chunk carries usage');
    for (const ch of chunks.slice(0, -1)) assert.ok(!ch.usage, 'only the last chunk has usage');
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const text = chunks.flatMap((ch) => ch.choices.map((c) => c.delta.content ?? '')).join('');
    const finishes = chunks.flatMap((ch) => ch.choices.map((c) => c.finish_reason)).filter((f) => f !== null && f !== undefined);
    assert.equal(finishes.length, 1, 'exactly one chunk has a finish_reason');
    assert.ok(chatGreedy, 'the unstreamed test ran');
    assert.equal(text, chatGreedy.choices[0].message.content, 'streamed text == unstreamed text (greedy)');
    assert.equal(finishes[0], chatGreedy.choices[0].finish_reason);
    assert.deepEqual(
        [last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens],
        [chatGreedy.usage.prompt_tokens, chatGreedy.usage.completion_tokens, chatGreedy.usage.total_tokens]);
});

test('chat streaming on the wire: text/event-stream, data: lines, [DONE] last, x-request-id == chunk id', async () => {
    const r = await raw(URL_OPEN, '/v1/chat/completions', {
        model: MODEL, messages: chatMessages, max_tokens: 6, temperature: 0, stream: true,
        stream_options: { include_usage: true },
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /^text\/event-stream/);
    const events = sseEvents(r.text);
    assert.equal(events[events.length - 1], '[DONE]');
    const objs = events.slice(0, -1).map((e) => JSON.parse(e));
    for (const o of objs) assert.equal(o.id, r.headers.get('x-request-id'));
    assert.ok(objs[objs.length - 1].usage);
});

test('chat streaming without include_usage has no usage anywhere', async () => {
    const r = await raw(URL_OPEN, '/v1/chat/completions', {
        model: MODEL, messages: chatMessages, max_tokens: 4, temperature: 0, stream: true,
    });
    const events = sseEvents(r.text);
    assert.equal(events[events.length - 1], '[DONE]');
    for (const e of events.slice(0, -1)) {
        const o = JSON.parse(e);
        assert.ok(o.usage === undefined || o.usage === null, `no usage: ${e}`);
        assert.ok(o.choices.length >= 1);
    }
});

test('chat n=2 gives two choices with indexes 0 and 1', async () => {
    const r = await open.chat.completions.create({ model: MODEL, messages: chatMessages, max_tokens: 4, n: 2, temperature: 1, seed: 7 });
    conforms(JSON.parse(JSON.stringify(r)), 'CreateChatCompletionResponse');
    assert.deepEqual(r.choices.map((c) => c.index).sort(), [0, 1]);
});

test('chat logprobs: one entry per token with top_logprobs alternatives', async () => {
    const r = await open.chat.completions.create({
        model: MODEL, messages: chatMessages, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3,
    });
    conforms(JSON.parse(JSON.stringify(r)), 'CreateChatCompletionResponse');
    const lp = r.choices[0].logprobs.content;
    assert.equal(lp.length, r.usage.completion_tokens);
    for (const t of lp) {
        assert.ok(t.logprob <= 0);
        assert.equal(t.top_logprobs.length, 3);
        // greedy: the chosen token is the most likely one
        assert.ok(t.logprob >= t.top_logprobs[0].logprob - 1e-5, JSON.stringify(t));
    }
    assert.equal(lp.map((t) => t.token).join(''), r.choices[0].message.content);
});

// ---- completions ----
let complGreedy = null;
test('completions.create: shape, text, usage', async () => {
    const { data, response } = await open.completions
        .create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 })
        .withResponse();
    conforms(JSON.parse(JSON.stringify(data)), 'CreateCompletionResponse');
    assert.equal(data.object, 'text_completion');
    assert.equal(response.headers.get('x-request-id'), data.id);
    assert.equal(data.choices.length, 1);
    assert.equal(typeof data.choices[0].text, 'string');
    assert.ok(data.choices[0].text.length > 0);
    assert.ok(data.usage.completion_tokens > 0 && data.usage.completion_tokens <= 16);
    complGreedy = data;
});

test('completions streaming with include_usage equals the unstreamed answer', async () => {
    const stream = await open.completions.create({
        model: MODEL, prompt: 'Once upon a time', max_tokens: 16, temperature: 0,
        stream: true, stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const ch of stream) chunks.push(JSON.parse(JSON.stringify(ch)));
    // The spec has no chunk schema for completions: chunks are CreateCompletionResponse
    // bodies, except that finish_reason is null until the last one (as OpenAI sends them).
    for (const ch of chunks) {
        conforms({ ...ch, choices: ch.choices.map((c) => ({ ...c, finish_reason: c.finish_reason ?? 'length' })) },
            'CreateCompletionResponse');
        assert.equal(ch.id, chunks[0].id);
    }
    const finishes = chunks.flatMap((ch) => ch.choices.map((c) => c.finish_reason)).filter((f) => f !== null && f !== undefined);
    assert.deepEqual(finishes, [complGreedy.choices[0].finish_reason], 'one finish_reason, the unstreamed one');
    const last = chunks[chunks.length - 1];
    assert.ok(last.usage, 'usage in the last chunk');
    const text = chunks.flatMap((c) => c.choices.map((x) => x.text)).join('');
    assert.equal(text, complGreedy.choices[0].text);
    assert.equal(last.usage.completion_tokens, complGreedy.usage.completion_tokens);
});

test('completions stop string ends the answer before it', async () => {
    const full = complGreedy.choices[0].text;
    // a stop string taken from the middle of the greedy answer
    const words = full.split(' ').filter((w) => w.length >= 2);
    if (words.length < 2) return; // nothing to cut at
    const stop = words[1];
    const r = await open.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 16, temperature: 0, stop: [stop] });
    assert.equal(r.choices[0].text, full.slice(0, full.indexOf(stop)));
    assert.equal(r.choices[0].finish_reason, 'stop');
});

// ---- embeddings ----
test('embeddings.create: batch, unit norm, same input same vector, base64 == float', async () => {
    const inputs = ['hello world', 'Once upon a time there was a cat', 'hello world'];
    const r = await open.embeddings.create({ model: MODEL, input: inputs }); // the SDK asks for base64
    assert.equal(r.data.length, 3);
    const dim = r.data[0].embedding.length;
    assert.ok(dim > 0);
    r.data.forEach((d, i) => {
        assert.equal(d.index, i);
        assert.equal(d.embedding.length, dim);
        assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-3, `norm ${norm(d.embedding)}`);
    });
    assert.deepEqual(Array.from(r.data[0].embedding), Array.from(r.data[2].embedding));
    assert.notDeepEqual(Array.from(r.data[0].embedding), Array.from(r.data[1].embedding));
    assert.ok(r.usage.prompt_tokens > 0);
    const f = await raw(URL_OPEN, '/v1/embeddings', { model: MODEL, input: inputs, encoding_format: 'float' });
    assert.equal(f.status, 200);
    conforms(f.json, 'CreateEmbeddingResponse');
    for (let i = 0; i < 3; i++) {
        const a = f.json.data[i].embedding, b = r.data[i].embedding;
        for (let k = 0; k < dim; k++) assert.ok(Math.abs(a[k] - b[k]) <= 1e-6 * Math.max(1, Math.abs(a[k])), `float vs base64 at ${i},${k}`);
    }
    const one = await open.embeddings.create({ model: MODEL, input: 'hello world', encoding_format: 'float' });
    assert.deepEqual(one.data[0].embedding, f.json.data[0].embedding, 'a single input equals the same input in a batch');
});

// ---- errors as the SDK's typed errors ----
async function expectError(promise, Cls, status) {
    try {
        await promise;
    } catch (e) {
        assert.ok(e instanceof Cls, `want ${Cls.name}, got ${e.constructor.name}: ${e.message}`);
        assert.equal(e.status, status);
        if (schemas) conforms(e.error, 'Error');
        assert.equal(typeof e.error?.message, 'string');
        return e;
    }
    assert.fail(`no error; want ${Cls.name}`);
}

test('unknown model -> NotFoundError 404 model_not_found', async () => {
    const e = await expectError(open.chat.completions.create({ model: 'no-such-model', messages: chatMessages }), OpenAI.NotFoundError, 404);
    assert.equal(e.code, 'model_not_found');
    assert.ok(e.param === 'model' || e.param === null, `param ${e.param}`);
    const r = await raw(URL_OPEN, '/v1/completions', { model: 'no-such-model', prompt: 'x' });
    assert.equal(r.status, 404);
    conforms(r.json, 'ErrorResponse');
});

test('temperature out of range -> BadRequestError 400 naming the param', async () => {
    const e = await expectError(open.chat.completions.create({ model: MODEL, messages: chatMessages, temperature: 5 }), OpenAI.BadRequestError, 400);
    assert.equal(e.param, 'temperature');
    assert.equal(e.type, 'invalid_request_error');
});

test('a bad role -> BadRequestError 400 naming messages[0].role', async () => {
    const e = await expectError(open.chat.completions.create({ model: MODEL, messages: [{ role: 'wizard', content: 'hi' }] }), OpenAI.BadRequestError, 400);
    assert.equal(e.param, 'messages[0].role');
});

test('embeddings without input -> BadRequestError 400 (param input)', async () => {
    const e = await expectError(open.embeddings.create({ model: MODEL, encoding_format: 'float' }), OpenAI.BadRequestError, 400);
    assert.equal(e.param, 'input');
});

if (URL_KEYED) {
    test('keyed server: the right key works, a wrong one is AuthenticationError 401', async () => {
        const good = client(URL_KEYED, KEY);
        const r = await good.completions.create({ model: MODEL, prompt: 'Once', max_tokens: 2, temperature: 0 });
        assert.equal(r.object, 'text_completion');
        const bad = client(URL_KEYED, 'hs-wrong-key-0000000000000000000000000000000000');
        const e = await expectError(bad.completions.create({ model: MODEL, prompt: 'Once', max_tokens: 2 }), OpenAI.AuthenticationError, 401);
        assert.equal(e.type, 'authentication_error');
        await expectError(bad.models.list(), OpenAI.AuthenticationError, 401);
    });
}

if (URL_LIMITED) {
    test(`rate limit (${LIMIT_RPM}/min) -> RateLimitError 429 with Retry-After and x-ratelimit-*`, async () => {
        const c = client(URL_LIMITED);
        for (let i = 0; i < LIMIT_RPM; i++) {
            const { response } = await c.completions.create({ model: MODEL, prompt: 'Once', max_tokens: 1 }).withResponse();
            assert.equal(response.headers.get('x-ratelimit-limit-requests'), String(LIMIT_RPM));
            assert.equal(response.headers.get('x-ratelimit-remaining-requests'), String(LIMIT_RPM - 1 - i));
        }
        const e = await expectError(c.completions.create({ model: MODEL, prompt: 'Once', max_tokens: 1 }), OpenAI.RateLimitError, 429);
        const ra = Number(e.headers.get('retry-after'));
        assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 60, `Retry-After ${e.headers.get('retry-after')}`);
        assert.equal(e.headers.get('x-ratelimit-limit-requests'), String(LIMIT_RPM));
        assert.equal(e.headers.get('x-ratelimit-remaining-requests'), '0');
        assert.ok(e.headers.get('x-ratelimit-reset-requests'), 'x-ratelimit-reset-requests');
        assert.equal(e.type, 'rate_limit_error');
    });
}

// ---- agents and structured output (issue 5) ----
const AGENT = process.env.HS_AGENT;
if (AGENT) {
    test('models.list lists the agent with its parent model', async () => {
        const page = await open.models.list();
        const a = page.data.find((m) => m.id === AGENT);
        assert.ok(a, `ids ${JSON.stringify(page.data.map((m) => m.id))} include ${AGENT}`);
        assert.equal(a.object, 'model');
        assert.equal(a.parent, MODEL);
    });

    test('chat with an agent as the model: its schema shapes the answer', async () => {
        for (const seed of [1, 2, 3]) {
            const data = await open.chat.completions.create({
                model: AGENT, messages: [{ role: 'user', content: 'Smoke near the port.' }], seed, temperature: 1,
                max_tokens: 80,
            });
            conforms(JSON.parse(JSON.stringify(data)), 'CreateChatCompletionResponse');
            assert.equal(data.model, AGENT);
            const doc = JSON.parse(data.choices[0].message.content);
            assert.ok(['low', 'high'].includes(doc.risk_level), JSON.stringify(doc));
            assert.ok(Array.isArray(doc.actions) && doc.actions.every((x) => typeof x === 'string'), JSON.stringify(doc));
        }
    });

    test('response_format json_schema through the SDK: every answer parses and validates', async () => {
        const schema = {
            type: 'object',
            properties: { count: { type: 'integer' }, ok: { type: 'boolean' },
                          tags: { type: 'array', items: { type: 'string', enum: ['fire', 'flood'] }, maxItems: 3 } },
            required: ['count', 'ok', 'tags'], additionalProperties: false,
        };
        for (const seed of [4, 5, 6]) {
            const data = await open.chat.completions.create({
                model: MODEL, messages: chatMessages, seed, temperature: 1, max_tokens: 60,
                response_format: { type: 'json_schema', json_schema: { name: 'report', schema, strict: true } },
            });
            const doc = JSON.parse(data.choices[0].message.content);
            assert.ok(Number.isInteger(doc.count) && typeof doc.ok === 'boolean', JSON.stringify(doc));
            assert.ok(doc.tags.length <= 3 && doc.tags.every((t) => t === 'fire' || t === 'flood'), JSON.stringify(doc));
            assert.deepEqual(Object.keys(doc), ['count', 'ok', 'tags']);
        }
    });

    test('response_format json_object through the SDK: a JSON object', async () => {
        const data = await open.chat.completions.create({
            model: MODEL, messages: chatMessages, seed: 9, temperature: 1, max_tokens: 40,
            response_format: { type: 'json_object' },
        });
        const doc = JSON.parse(data.choices[0].message.content);
        assert.equal(typeof doc, 'object');
        assert.ok(doc !== null && !Array.isArray(doc));
    });
}

// ---- run ----
let failed = 0;
const t0 = Date.now();
for (const t of tests) {
    const s = Date.now();
    try {
        await t.fn();
        console.log(`ok   ${t.name} (${Date.now() - s} ms)`);
    } catch (e) {
        failed++;
        console.log(`FAIL ${t.name}\n     ${String(e && e.stack ? e.stack : e).split('\n').slice(0, 12).join('\n     ')}`);
    }
}
console.log(`sdk.test: ${tests.length - failed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
process.exit(failed ? 1 : 0);
