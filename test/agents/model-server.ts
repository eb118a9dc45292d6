import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';

// A stand-in model API for tests: no model API is reachable from these machines, so the
// real agents (Codex CLI, Claude Code, unmodified) talk to this server instead. It speaks
// the wire protocols they use — OpenAI Responses (POST …/responses, SSE) and Anthropic
// Messages (POST /v1/messages, SSE) — and replays a script of tool calls. Which step to
// answer is derived from the request itself (how many tool results it carries), so side
// requests and retries do not shift the script. Every request is recorded, auth headers
// included, so a test can check what reached the "model".

export interface ToolStep {
  /** Tool name as the agent declared it (exec_command, shell, Bash, Read, Edit…). */
  name: string;
  /** Tool arguments (the agent's own schema). */
  input: Record<string, unknown>;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /** 'openai' | 'anthropic' | 'other' */
  api: string;
  /** Tool names the agent offered (main agent loop requests only). */
  tools: string[];
  /** Tool results carried by this request, in order (the outputs the agent sent back). */
  toolResults: string[];
}

export interface ModelServer {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Main-loop requests (those offering tools). */
  mainRequests(): RecordedRequest[];
  /** All tool results of the longest conversation seen. */
  lastToolResults(): string[];
  close(): Promise<void>;
}

export interface ModelServerOptions {
  script: ToolStep[];
  finalText?: string;
  host?: string;
}

function toolResultsOpenAI(body: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const it of (body.input as Record<string, unknown>[] | undefined) ?? []) {
    if (
      it &&
      (it.type === 'function_call_output' ||
        it.type === 'custom_tool_call_output' ||
        it.type === 'local_shell_call_output')
    ) {
      const o = it.output;
      out.push(typeof o === 'string' ? o : JSON.stringify(o));
    }
  }
  return out;
}

function toolResultsAnthropic(body: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const m of (body.messages as { content?: unknown }[] | undefined) ?? []) {
    if (!Array.isArray(m.content)) continue;
    for (const b of m.content as Record<string, unknown>[]) {
      if (b.type !== 'tool_result') continue;
      const c = b.content;
      out.push(
        typeof c === 'string'
          ? c
          : Array.isArray(c)
            ? c.map((x: { text?: string }) => x.text ?? '').join('')
            : JSON.stringify(c),
      );
    }
  }
  return out;
}

function sse(res: ServerResponse, events: [string, unknown][]): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'close' });
  for (const [ev, data] of events) res.write(`event: ${ev}\ndata: ${JSON.stringify(data)}\n\n`);
  res.end();
}

// ---- OpenAI Responses ---------------------------------------------------------------
function openaiResponse(
  res: ServerResponse,
  body: Record<string, unknown>,
  step: ToolStep | null,
  finalText: string,
): void {
  const id = `resp_${randomUUID().replace(/-/g, '')}`;
  const model = String(body.model ?? 'stand-in');
  const base = {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    model,
    status: 'in_progress',
    output: [] as unknown[],
  };
  let item: Record<string, unknown>;
  if (step) {
    item = {
      type: 'function_call',
      id: `fc_${randomUUID().replace(/-/g, '')}`,
      call_id: `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`,
      name: step.name,
      arguments: JSON.stringify(step.input),
      status: 'completed',
    };
  } else {
    item = {
      type: 'message',
      id: `msg_${randomUUID().replace(/-/g, '')}`,
      role: 'assistant',
      status: 'completed',
      content: [{ type: 'output_text', text: finalText, annotations: [] }],
    };
  }
  const usage = {
    input_tokens: 10,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: 5,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 15,
  };
  const events: [string, unknown][] = [
    ['response.created', { type: 'response.created', sequence_number: 0, response: base }],
    ['response.in_progress', { type: 'response.in_progress', sequence_number: 1, response: base }],
    [
      'response.output_item.added',
      {
        type: 'response.output_item.added',
        sequence_number: 2,
        output_index: 0,
        item: { ...item, status: 'in_progress', ...(step ? { arguments: '' } : { content: [] }) },
      },
    ],
  ];
  if (step)
    events.push([
      'response.function_call_arguments.done',
      {
        type: 'response.function_call_arguments.done',
        sequence_number: 3,
        item_id: item.id,
        output_index: 0,
        arguments: item.arguments,
      },
    ]);
  else
    events.push([
      'response.output_text.delta',
      {
        type: 'response.output_text.delta',
        sequence_number: 3,
        item_id: item.id,
        output_index: 0,
        content_index: 0,
        delta: finalText,
      },
    ]);
  events.push(
    ['response.output_item.done', { type: 'response.output_item.done', sequence_number: 4, output_index: 0, item }],
    [
      'response.completed',
      {
        type: 'response.completed',
        sequence_number: 5,
        response: { ...base, status: 'completed', output: [item], usage },
      },
    ],
  );
  if (body.stream === false) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...base, status: 'completed', output: [item], usage }));
    return;
  }
  sse(res, events);
}

// ---- Anthropic Messages -------------------------------------------------------------
function anthropicResponse(
  res: ServerResponse,
  body: Record<string, unknown>,
  step: ToolStep | null,
  finalText: string,
): void {
  const id = `msg_${randomUUID().replace(/-/g, '').slice(0, 24)}`;
  const model = String(body.model ?? 'stand-in');
  const block = step
    ? {
        type: 'tool_use',
        id: `toolu_${randomUUID().replace(/-/g, '').slice(0, 24)}`,
        name: step.name,
        input: step.input,
      }
    : { type: 'text', text: finalText };
  const stop = step ? 'tool_use' : 'end_turn';
  const usage = { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [block],
        stop_reason: stop,
        stop_sequence: null,
        usage,
      }),
    );
    return;
  }
  const events: [string, unknown][] = [
    [
      'message_start',
      {
        type: 'message_start',
        message: {
          id,
          type: 'message',
          role: 'assistant',
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { ...usage, output_tokens: 1 },
        },
      },
    ],
  ];
  if (step) {
    events.push(
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { ...block, input: {} } }],
      [
        'content_block_delta',
        {
          type: 'content_block_delta',
          index: 0,
          delta: { type: 'input_json_delta', partial_json: JSON.stringify(step.input) },
        },
      ],
    );
  } else {
    events.push(
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
      [
        'content_block_delta',
        { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: finalText } },
      ],
    );
  }
  events.push(
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    [
      'message_delta',
      { type: 'message_delta', delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: 5 } },
    ],
    ['message_stop', { type: 'message_stop' }],
  );
  sse(res, events);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > 64 << 20) throw new Error('body too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startModelServer(o: ModelServerOptions): Promise<ModelServer> {
  const requests: RecordedRequest[] = [];
  const finalText = o.finalText ?? 'Done.';
  const server: Server = createServer((req, res) => {
    void (async () => {
      const text = await readBody(req);
      let body: Record<string, unknown>;
      try {
        body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        body = { _raw: text.slice(0, 2000) };
      }
      const path = req.url ?? '/';
      const pathname = path.split('?')[0]!;
      const rec: RecordedRequest = {
        method: req.method ?? 'GET',
        path,
        headers: { ...req.headers },
        body,
        api: 'other',
        tools: [],
        toolResults: [],
      };
      requests.push(rec);
      if (req.method === 'POST' && /\/responses$/.test(pathname)) {
        rec.api = 'openai';
        rec.tools = ((body.tools as { name?: string; type?: string }[] | undefined) ?? []).map(
          (t) => t.name ?? t.type ?? '?',
        );
        rec.toolResults = toolResultsOpenAI(body);
        const step = rec.tools.length ? (o.script[rec.toolResults.length] ?? null) : null;
        return openaiResponse(res, body, step, finalText);
      }
      if (req.method === 'POST' && pathname === '/v1/messages') {
        rec.api = 'anthropic';
        rec.tools = ((body.tools as { name?: string }[] | undefined) ?? []).map((t) => t.name ?? '?');
        rec.toolResults = toolResultsAnthropic(body);
        const step = rec.tools.length ? (o.script[rec.toolResults.length] ?? null) : null;
        return anthropicResponse(res, body, step, finalText);
      }
      if (req.method === 'POST' && pathname === '/v1/messages/count_tokens') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ input_tokens: 10 }));
      }
      if (req.method === 'GET' && /\/models$/.test(pathname)) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ object: 'list', data: [], models: [] }));
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: { type: 'not_found_error', message: `stand-in model server: no route for ${req.method} ${pathname}` },
        }),
      );
    })().catch((e) => {
      try {
        res.writeHead(500);
        res.end(String(e));
      } catch {
        /* closed */
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, o.host ?? '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${o.host ?? '127.0.0.1'}:${port}`,
    port,
    requests,
    mainRequests: () => requests.filter((r) => r.tools.length > 0),
    lastToolResults: () =>
      requests.reduce<string[]>((best, r) => (r.toolResults.length > best.length ? r.toolResults : best), []),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
