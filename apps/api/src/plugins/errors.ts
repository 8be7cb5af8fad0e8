import type { FastifyError, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

/**
 * An error the client caused or must know about, sent as
 * `{ error: { message, type, param, code } }` — the shape OpenAI's API uses,
 * so that its client libraries surface our messages as they are.
 */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get type(): string {
    if (this.statusCode === 401) return 'authentication_error';
    if (this.statusCode === 429) return 'rate_limit_error';
    if (this.statusCode >= 500) return 'server_error';
    return 'invalid_request_error';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A zod issue as fastify-type-provider-zod hands it over. */
interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: { keys?: readonly string[] };
}

/** "decoding.temperature" from a validation issue; an unknown key is named itself. */
function issueParam(root: string, issue: ValidationIssue): string {
  const path = issue.instancePath.split('/').filter((part) => part !== '');
  if (issue.keyword === 'unrecognized_keys' && issue.params.keys?.length) path.push(issue.params.keys[0]!);
  // The body's fields are named bare ("message"), as clients write them.
  const named = root === 'body' ? path : [root, ...path];
  return named.length > 0 ? named.join('.') : root;
}

/** Fastify's own client errors, mapped to messages that say what to fix. */
function frameworkError(error: FastifyError): ApiError | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'the request body must be JSON (Content-Type: application/json)', null, 'unsupported_media_type');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, error.message, null, 'body_too_large');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'the request body is empty; send a JSON object', null, 'invalid_json');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError(400, `the request body is not valid JSON: ${error.message}`, null, 'invalid_json');
    default:
      break;
  }
  // The JSON parser's SyntaxError carries statusCode 400 and no code.
  if (error instanceof SyntaxError && error.statusCode === 400) return new ApiError(400, `the request body is not valid JSON: ${error.message}`, null, 'invalid_json');
  return undefined;
}

/** Sends every error, validation and 404 included, in the one JSON shape. */
const errorsPluginBody: FastifyPluginAsync = async (app) => {
  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    let apiError: ApiError;
    if (error instanceof ApiError) apiError = error;
    else if (hasZodFastifySchemaValidationErrors(error)) {
      const issue = error.validation[0] as unknown as ValidationIssue;
      const param = issueParam(error.validationContext ?? 'body', issue);
      apiError = new ApiError(400, `${param}: ${issue.message ?? 'invalid'}`, param, 'invalid_value');
    } else {
      const mapped = frameworkError(error);
      if (mapped) apiError = mapped;
      else if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) apiError = new ApiError(error.statusCode, error.message);
      else {
        request.log.error({ err: error }, 'request failed');
        apiError = new ApiError(500, 'internal error; see the server log', null, 'internal_error');
      }
    }
    void reply.code(apiError.statusCode).headers(apiError.headers).send(apiError.body());
  });
  app.setNotFoundHandler((request, reply) => {
    const e = new ApiError(404, `no route ${request.method} ${request.url.split('?')[0]}`, null, 'not_found');
    void reply.code(404).send(e.body());
  });
};

export const errorsPlugin = fp(errorsPluginBody);
