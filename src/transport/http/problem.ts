import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorCode, type FieldError } from '../../domain/errors.js';

/** The HTTP status of each error code: the admin API's answers and the gateways' alike. */
export const STATUS: Record<ErrorCode, number> = {
  VALIDATION_FAILED: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  OVERLOADED: 503,
  STORAGE_UNAVAILABLE: 503,
  PROPAGATION_PENDING: 503,
  DEADLINE_EXCEEDED: 503,
  HASHER_FAULT: 503,
  INTERNAL: 500,
};

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** RFC 9457 problem details. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldError[];
}

/** Send a problem+json answer. */
export function sendProblem(reply: FastifyReply, status: number, detail: string, errors?: FieldError[]): FastifyReply {
  const title = TITLES[status] ?? 'Error';
  const body: ProblemBody = {
    type: `https://docs.otesse.com/problems/${title.toLowerCase().replace(/ /g, '-')}`,
    title,
    status,
    detail,
  };
  if (errors) body.errors = errors;
  return reply.code(status).type('application/problem+json').send(body);
}

function validationErrors(err: FastifyError): FieldError[] {
  return (err.validation ?? []).map((v) => {
    const missing = (v.params as { missingProperty?: string }).missingProperty;
    const extra = (v.params as { additionalProperty?: string }).additionalProperty;
    const path =
      [v.instancePath.replace(/^\//, ''), missing ?? extra].filter(Boolean).join('/') ||
      (err.validationContext ?? 'body');
    return { path, message: extra ? 'is not a known field' : (v.message ?? 'is invalid') };
  });
}

/** The one error handler: AppError codes and Fastify's own errors to problem+json; 5xx detail only in the log. */
export function errorHandler(err: FastifyError | AppError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof AppError) {
    const status = STATUS[err.code];
    if (status >= 500) request.log.warn({ code: err.code }, err.message);
    const safe = status < 500 || err.code === 'PROPAGATION_PENDING';
    return sendProblem(
      reply,
      status,
      safe ? err.message : 'the service cannot answer right now; retry later',
      err.errors.length > 0 ? err.errors : undefined,
    );
  }
  if (err.validation)
    return sendProblem(reply, 400, `invalid ${err.validationContext ?? 'request'}`, validationErrors(err));
  const status = err.statusCode ?? 500;
  if (status >= 500) {
    request.log.error({ err }, 'request failed');
    return sendProblem(reply, 500, 'internal error');
  }
  return sendProblem(reply, status, err.message);
}
