import Type from 'typebox'

export const ErrorEnvelope = Type.Object({
  success: Type.Literal(false),
  error: Type.Object({ message: Type.String() })
})

const statusOf = {
  400: 'Bad request',
  401: 'Invalid token',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  429: 'Rate limit exceeded',
  500: 'Internal error',
  503: 'Unavailable',
  504: 'Timed out'
} as const

type ErrorStatus = keyof typeof statusOf

/**
 * The error part of a route's response schema. 400, 401, 429 and 500 can
 * happen on every authenticated route (validation, auth, rate limit, a bug),
 * so they are always declared; routes add their own.
 */
export function errorResponses (...extra: ErrorStatus[]): Record<number, typeof ErrorEnvelope> {
  const statuses = new Set<ErrorStatus>([400, 401, 429, 500, ...extra])
  return Object.fromEntries([...statuses].map(status => [status, Type.Object(ErrorEnvelope.properties, { description: statusOf[status] })]))
}

/*
 * Nullable values as JSON Schema type arrays rather than anyOf unions: the
 * response serializer (fast-json-stringify) writes a type array directly but
 * validates every anyOf branch for every value, which is measurable on `list`.
 */
export const NullableString = Type.Unsafe<string | null>({ type: ['string', 'null'] })
export const NullableInteger = Type.Unsafe<number | null>({ type: ['integer', 'null'] })
export const NullableProxyProtocol = Type.Unsafe<'http' | 'https' | 'socks5' | null>({ type: ['string', 'null'], enum: ['http', 'https', 'socks5', null] })

export const InstanceParams = Type.Object({
  instance: Type.String({ minLength: 1, maxLength: 64 })
})
