#!/usr/bin/env node
// A load generator for OpenAI-compatible servers (hestia serve, llama-server, vLLM):
// N concurrent clients, each sending one request after another, for a number of
// requests or a number of seconds. Streams are read as SSE to time the first token.
// Used by tests/integration/serve_load.sh (load test) and scripts/bench-serve.sh
// (the serving benchmark). Only node's built-in fetch; no dependencies.
//
//   node bench/serve_load.mjs --url http://127.0.0.1:8000 --model NAME [options]
//     --clients N          concurrent clients (default 8)
//     --requests R         requests per client (default 4), or
//     --duration S         keep sending for S seconds (requests in flight then finish)
//     --endpoint E         completions (default) or chat
//     --mix                each request picks chat or completions, streamed or not,
//                          at random (seeded): a load test's traffic, not a benchmark's
//     --stream             stream the answers (TTFT is measured only when streamed)
//     --max-tokens N       (default 16)     --ignore-eos   ask for exactly max-tokens
//     --temperature T      (default 0)
//     --prompts FILE       JSON array of prompt strings; request k of client c uses
//                          prompt (c * R + k) mod length, so with enough prompts no two
//                          requests share one (default: generated story openings)
//     --api-key KEY        sent as Authorization: Bearer
//     --timeout S          per request (default 300)
//     --ids-out FILE       one line per request: x-request-id, HTTP status, body id
//     --json-out FILE      the summary as JSON
//     --records-out FILE   every request as one JSON line (start, TTFT, latency, tokens, id)
//     --quiet              no summary line on stdout
// The summary: requests by status, completion tokens, wall time, aggregate generated
// tokens/s (completion tokens / wall time), p50/p95/mean of TTFT and latency.
import fs from 'node:fs';

function parseArgs(argv) {
    const o = {
        url: null, model: null, clients: 8, requests: 4, duration: 0, endpoint: 'completions', mix: false,
        stream: false, maxTokens: 16, ignoreEos: false, temperature: 0, prompts: null, apiKey: null, timeout: 300,
        idsOut: null, jsonOut: null, recordsOut: null, quiet: false, seed: 1,
    };
    const num = (k, v) => {
        const x = Number(v);
        if (!Number.isFinite(x)) throw new Error(`${k}: '${v}' is not a number`);
        return x;
    };
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i];
        const v = () => {
            if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
            return argv[++i];
        };
        switch (a) {
        case '--url': o.url = v().replace(/\/+$/, ''); break;
        case '--model': o.model = v(); break;
        case '--clients': o.clients = num(a, v()); break;
        case '--requests': o.requests = num(a, v()); break;
        case '--duration': o.duration = num(a, v()); break;
        case '--endpoint': o.endpoint = v(); break;
        case '--mix': o.mix = true; break;
        case '--stream': o.stream = true; break;
        case '--max-tokens': o.maxTokens = num(a, v()); break;
        case '--ignore-eos': o.ignoreEos = true; break;
        case '--temperature': o.temperature = num(a, v()); break;
        case '--prompts': o.prompts = JSON.parse(fs.readFileSync(v(), 'utf8')); break;
        case '--api-key': o.apiKey = v(); break;
        case '--timeout': o.timeout = num(a, v()); break;
        case '--ids-out': o.idsOut = v(); break;
        case '--json-out': o.jsonOut = v(); break;
        case '--records-out': o.recordsOut = v(); break;
        case '--seed': o.seed = num(a, v()); break;
        case '--quiet': o.quiet = true; break;
        case '-h': case '--help':
            console.log(fs.readFileSync(new URL(import.meta.url)).toString().split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
            process.exit(0);
            break;
        default: throw new Error(`unknown option ${a}`);
        }
    }
    if (!o.url || !o.model) throw new Error('--url and --model are required');
    if (!['completions', 'chat'].includes(o.endpoint)) throw new Error('--endpoint is completions or chat');
    return o;
}

// A small seeded generator (xorshift32) so that --mix is reproducible.
function rng(seed) {
    let s = (seed >>> 0) || 1;
    return () => {
        s ^= s << 13; s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5; s >>>= 0;
        return s / 4294967296;
    };
}

const WORDS = ['cat', 'dog', 'tree', 'ball', 'park', 'sun', 'girl', 'boy', 'bird', 'house', 'car', 'cake', 'friend',
    'garden', 'river', 'box', 'hat', 'toy', 'moon', 'fish'];
function defaultPrompt(k) {
    return `Once upon a time there was a ${WORDS[k % WORDS.length]} and a ${WORDS[(k * 7 + 3) % WORDS.length]} who`;
}

function percentile(sorted, p) {
    if (sorted.length === 0) return null;
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[i];
}

async function oneRequest(o, kind, stream, prompt) {
    const body = { model: o.model, max_tokens: o.maxTokens, temperature: o.temperature };
    if (kind === 'chat') body.messages = [{ role: 'user', content: prompt }];
    else body.prompt = prompt;
    if (o.ignoreEos) body.ignore_eos = true;
    if (stream) {
        body.stream = true;
        body.stream_options = { include_usage: true };
    }
    const headers = { 'content-type': 'application/json' };
    if (o.apiKey) headers.authorization = `Bearer ${o.apiKey}`;
    const path = kind === 'chat' ? '/v1/chat/completions' : '/v1/completions';
    const rec = { kind, stream, status: 0, id: null, bodyId: null, ttft_ms: null, latency_ms: null, prompt_tokens: null,
        completion_tokens: null, error: null, finish_reason: null };
    const t0 = performance.now();
    try {
        const res = await fetch(o.url + path, {
            method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(o.timeout * 1000),
        });
        rec.status = res.status;
        rec.id = res.headers.get('x-request-id');
        if (!stream || res.status !== 200) {
            const text = await res.text();
            rec.latency_ms = performance.now() - t0;
            let j = null;
            try { j = JSON.parse(text); } catch { rec.error = `not JSON: ${text.slice(0, 120)}`; }
            if (j && res.status === 200) {
                rec.bodyId = j.id;
                rec.prompt_tokens = j.usage?.prompt_tokens ?? null;
                rec.completion_tokens = j.usage?.completion_tokens ?? null;
                rec.finish_reason = j.choices?.[0]?.finish_reason ?? null;
            } else if (j) {
                rec.error = j.error?.message ?? text.slice(0, 120);
            }
            return rec;
        }
        const reader = res.body.getReader();
        const dec = new TextDecoder();
        let buf = '', done = false, sawDone = false;
        while (!done) {
            const r = await reader.read();
            if (r.done) break;
            buf += dec.decode(r.value, { stream: true });
            let cut;
            while ((cut = buf.indexOf('\n\n')) >= 0) {
                const ev = buf.slice(0, cut);
                buf = buf.slice(cut + 2);
                for (const line of ev.split('\n')) {
                    if (!line.startsWith('data: ')) continue;
                    const data = line.slice(6);
                    if (data === '[DONE]') {
                        sawDone = true;
                        done = true;
                        break;
                    }
                    const j = JSON.parse(data);
                    rec.bodyId = rec.bodyId ?? j.id;
                    for (const c of j.choices || []) {
                        const t = kind === 'chat' ? c.delta?.content : c.text;
                        if (t && rec.ttft_ms === null) rec.ttft_ms = performance.now() - t0;
                        if (c.finish_reason) rec.finish_reason = c.finish_reason;
                    }
                    if (j.usage) {
                        rec.prompt_tokens = j.usage.prompt_tokens;
                        rec.completion_tokens = j.usage.completion_tokens;
                    }
                    if (j.error) rec.error = j.error.message;
                }
            }
        }
        rec.latency_ms = performance.now() - t0;
        if (!sawDone) rec.error = rec.error ?? 'the stream ended without data: [DONE]';
    } catch (e) {
        rec.latency_ms = performance.now() - t0;
        rec.error = `${e.name}: ${e.message}${e.cause ? ` (${e.cause.code ?? e.cause.message})` : ''}`;
    }
    return rec;
}

async function main() {
    const o = parseArgs(process.argv);
    const records = [];
    const rand = rng(o.seed);
    const tStart = performance.now();
    const deadline = o.duration > 0 ? tStart + o.duration * 1000 : Infinity;
    const perClient = o.duration > 0 ? Infinity : o.requests;
    let counter = 0;
    const client = async (c) => {
        for (let k = 0; k < perClient && performance.now() < deadline; k++) {
            const n = o.duration > 0 ? counter++ : c * o.requests + k;
            const prompt = o.prompts ? o.prompts[n % o.prompts.length] : defaultPrompt(n);
            const kind = o.mix ? (rand() < 0.5 ? 'chat' : 'completions') : o.endpoint;
            const stream = o.mix ? rand() < 0.5 : o.stream;
            const start = performance.now() - tStart;
            const rec = await oneRequest(o, kind, stream, prompt);
            rec.client = c;
            rec.start_ms = start;
            records.push(rec);
        }
    };
    await Promise.all(Array.from({ length: o.clients }, (_, c) => client(c)));
    const wall = (performance.now() - tStart) / 1000;

    const byStatus = {};
    for (const r of records) byStatus[r.status] = (byStatus[r.status] || 0) + 1;
    const ok = records.filter((r) => r.status === 200 && !r.error);
    const genTokens = ok.reduce((s, r) => s + (r.completion_tokens || 0), 0);
    const ttfts = ok.map((r) => r.ttft_ms).filter((x) => x !== null).sort((a, b) => a - b);
    const lats = ok.map((r) => r.latency_ms).sort((a, b) => a - b);
    const mean = (xs) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null);
    const ctoks = ok.map((r) => r.completion_tokens).filter((x) => x !== null);
    const ptoks = ok.map((r) => r.prompt_tokens).filter((x) => x !== null);
    const summary = {
        url: o.url, model: o.model, clients: o.clients, endpoint: o.mix ? 'mix' : o.endpoint, stream: o.mix ? 'mix' : o.stream,
        max_tokens: o.maxTokens, ignore_eos: o.ignoreEos, requests: records.length, ok: ok.length, by_status: byStatus,
        errors: records.filter((r) => r.error).length,
        first_errors: records.filter((r) => r.error).slice(0, 5).map((r) => `${r.status} ${r.error}`),
        wall_s: wall, completion_tokens: genTokens, tokens_per_second: wall > 0 ? genTokens / wall : 0,
        requests_per_second: wall > 0 ? records.length / wall : 0,
        completion_tokens_min: ctoks.length ? Math.min(...ctoks) : null,
        completion_tokens_max: ctoks.length ? Math.max(...ctoks) : null,
        prompt_tokens_min: ptoks.length ? Math.min(...ptoks) : null,
        prompt_tokens_max: ptoks.length ? Math.max(...ptoks) : null,
        ttft_ms: { p50: percentile(ttfts, 50), p95: percentile(ttfts, 95), mean: mean(ttfts), n: ttfts.length },
        latency_ms: { p50: percentile(lats, 50), p95: percentile(lats, 95), mean: mean(lats), n: lats.length },
    };
    if (o.idsOut) {
        fs.writeFileSync(o.idsOut, records.map((r) => `${r.id ?? ''}\t${r.status}\t${r.bodyId ?? ''}\t${r.kind}\t${r.stream ? 1 : 0}\n`).join(''));
    }
    if (o.jsonOut) fs.writeFileSync(o.jsonOut, JSON.stringify(summary, null, 1) + '\n');
    if (o.recordsOut) fs.writeFileSync(o.recordsOut, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    if (!o.quiet) {
        const f = (x) => (x === null ? '-' : (x / 1000).toFixed(2));
        console.log(`clients ${o.clients}: ${records.length} requests (${JSON.stringify(byStatus)}), ${genTokens} tokens in ` +
            `${wall.toFixed(1)} s = ${summary.tokens_per_second.toFixed(2)} tokens/s; TTFT p50 ${f(summary.ttft_ms.p50)} s ` +
            `p95 ${f(summary.ttft_ms.p95)} s; latency p50 ${f(summary.latency_ms.p50)} s p95 ${f(summary.latency_ms.p95)} s`);
        for (const e of summary.first_errors) console.log(`  error: ${e}`);
    }
}

main().catch((e) => {
    console.error(`serve_load: ${e.message}`);
    process.exit(2);
});
