import Type from 'typebox'

export const HealthReply = Type.Object({
  status: Type.Enum(['ok', 'unavailable']),
  checks: Type.Optional(Type.Record(Type.String(), Type.String()))
})
