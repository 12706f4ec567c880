/**
 * The OpenAPI 3.1 document of the API, generated from the route table (routes.ts) and its zod
 * schemas, never written by hand: a route added to the table is in the document, with the same
 * schemas the server checks requests with and the client checks answers with. Served at
 * GET /v1/openapi.json. OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what zod emits.
 *
 * Requests are described as they may be sent (zod's input side: fields with defaults are
 * optional), answers as they arrive (the output side). Checks zod cannot put into JSON Schema
 * (a refinement across fields, say) are enforced by the server but not described here.
 */
import { z } from 'zod';
import { ErrorCodes } from './errors.js';
import { OUTPUT_FRAMES_CONTENT_TYPE } from './frames.js';
import { OutputHeaders, Routes, type RouteDef } from './routes.js';
import { FERRY_VERSION } from './version.js';

type Json = Record<string, unknown>;

/** A schema as JSON Schema, without its own `$schema` line (the document says which dialect). */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const out = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  delete out.$schema;
  return out;
}

const ERROR_BODY: Json = {
  type: 'object',
  required: ['statusCode', 'code', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string', enum: Object.keys(ErrorCodes) },
    error: { type: 'string' },
    message: { type: 'string' },
    details: { type: 'object' },
  },
};

const FRAMES_SCHEMA: Json = { type: 'string', contentMediaType: OUTPUT_FRAMES_CONTENT_TYPE, description: 'output frames (packages/protocol/src/frames.ts)' };

function pathParameters(def: RouteDef): Json[] {
  return [...def.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
}

function queryParameters(def: RouteDef): Json[] {
  if (!def.query) return [];
  const schema = jsonSchema(def.query, 'input');
  const required = new Set((schema.required as string[] | undefined) ?? []);
  return Object.entries((schema.properties as Record<string, Json> | undefined) ?? {}).map(([name, s]) => ({
    name,
    in: 'query',
    required: required.has(name),
    schema: s,
  }));
}

function requestBody(def: RouteDef): Json | undefined {
  if (def.body === undefined) return undefined;
  const content =
    def.body === 'frames' ? { [OUTPUT_FRAMES_CONTENT_TYPE]: { schema: FRAMES_SCHEMA } } : { 'application/json': { schema: jsonSchema(def.body, 'input') } };
  return { required: true, content };
}

function successResponse(def: RouteDef): Json {
  if (def.response === 'empty') return { description: 'done; no body' };
  if (def.response === 'text') return { description: 'text', content: { [def.textType ?? 'text/plain']: { schema: { type: 'string' } } } };
  if (def.response === 'frames') {
    const header = (description: string, type: string): Json => ({ description, schema: { type } });
    return {
      description: 'output frames from the requested offset',
      headers: {
        [OutputHeaders.nextOffset]: header('offset to read from next', 'integer'),
        [OutputHeaders.taskStatus]: header("the task's status", 'string'),
        [OutputHeaders.complete]: header('true once the task has ended and all its output was read', 'string'),
      },
      content: { [OUTPUT_FRAMES_CONTENT_TYPE]: { schema: FRAMES_SCHEMA } },
    };
  }
  return { description: 'success', content: { 'application/json': { schema: jsonSchema(def.response, 'output') } } };
}

function operation(name: string, def: RouteDef): Json {
  const parameters = [...pathParameters(def), ...queryParameters(def)];
  const body = requestBody(def);
  return {
    operationId: name,
    tags: [def.auth === 'agent' || name === 'registerAgent' ? 'agent' : def.auth === 'none' ? 'public' : 'user'],
    ...(def.auth === 'none' ? { security: [] } : { security: [{ [def.auth === 'agent' ? 'agentToken' : 'userToken']: [] }] }),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(body ? { requestBody: body } : {}),
    responses: {
      [String(def.status ?? (def.response === 'empty' ? 204 : 200))]: successResponse(def),
      default: { description: 'an error (see the code)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
    },
  };
}

/** `/v1/tasks/:id` → `/v1/tasks/{id}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z]+)/g, '{$1}');
}

/** The document's top level, as the route table's OpenApiDocument schema describes it. */
export interface OpenApiDoc extends Json {
  openapi: string;
  info: { title: string; version: string; description: string };
  paths: Record<string, Json>;
}

export function openApiDocument(): OpenApiDoc {
  const paths: Record<string, Json> = {};
  for (const [name, def] of Object.entries(Routes) as [string, RouteDef][]) {
    const item = (paths[openApiPath(def.path)] ??= {});
    item[def.method.toLowerCase()] = operation(name, def);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Ferry API',
      version: FERRY_VERSION,
      description: 'Generated from the route table (packages/protocol/src/routes.ts). Errors share one body; its `code` is stable.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: {
      schemas: { Error: ERROR_BODY },
      securitySchemes: {
        userToken: { type: 'http', scheme: 'bearer', description: 'a user or service token (ferry login)' },
        agentToken: { type: 'http', scheme: 'bearer', description: "an agent's credential, from registering with a join token" },
      },
    },
  };
}
