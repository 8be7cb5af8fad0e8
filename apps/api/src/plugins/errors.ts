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
  params: { keys?: readonly string[]; maximum?: number | bigint; minimum?: number | bigint };
}

/**
 * The issue to report: the first, or, when its field broke several bounds of
 * the same kind, the tightest of them — 1e308 breaks zod's safe-integer bound
 * before the schema's `.max(512)`, and the client needs to hear 512.
 */
function reportedIssue(issues: readonly ValidationIssue[]): ValidationIssue {
  const first = issues[0]!;
  const bound = first.keyword === 'too_big' ? 'maximum' : first.keyword === 'too_small' ? 'minimum' : undefined;
  if (!bound) return first;
  const same = issues.filter((issue) => issue.keyword === first.keyword && issue.instancePath === first.instancePath && issue.params[bound] !== undefined);
  const tighter = (a: ValidationIssue, b: ValidationIssue) =>
    bound === 'maximum' ? b.params.maximum! < a.params.maximum! : b.params.minimum! > a.params.minimum!;
  return same.reduce((a, b) => (tighter(a, b) ? b : a), first);
}

/** "decoding.temperature" from a validation issue; an unknown key is named itself. */
function issueParam(root: string, issue: ValidationIssue): string {
  const path = issue.instancePath.split('/').filter((part) => part !== '');
  if (issue.keyword === 'unrecognized_keys' && issue.params.keys?.length) path.push(issue.params.keys[0]!);
  // The body's fields are named bare ("message"), as clients write them.
  const named = root === 'body' ? path : [root, ...path];
  return named.length > 0 ? named.join('.') : root;
}

/** Fastify's own client errors, mapped to messages that say what to fix (JSON syntax: plugins/json-body.ts). */
function frameworkError(error: FastifyError): ApiError | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'the request body must be JSON (Content-Type: application/json)', null, 'unsupported_media_type');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, error.message, null, 'body_too_large');
    default:
      break;
  }
  return undefined;
}

/** Sends every error, validation and 404 included, in the one JSON shape. */
const errorsPluginBody: FastifyPluginAsync = async (app) => {
  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    let apiError: ApiError;
    if (error instanceof ApiError) apiError = error;
    else if (hasZodFastifySchemaValidationErrors(error)) {
      const issue = reportedIssue(error.validation as unknown as ValidationIssue[]);
      const param = issueParam(error.validationContext ?? 'body', issue);
      apiError = new ApiError(400, `${param}: ${issue.message ?? 'invalid'}`, param, 'invalid_value');
    } else {
      const mapped = frameworkError(error);
      if (mapped) apiError = mapped;
      else if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500)
        apiError = new ApiError(error.statusCode, error.message);
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
