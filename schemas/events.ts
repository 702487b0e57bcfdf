import Type from 'typebox'

export const StreamQuery = Type.Object({
  /** Narrows /ws to these instances (comma separated). */
  instances: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.,-]*$', maxLength: 4096 }))
})
