import Type, { type Static } from 'typebox'
import { NullableString } from './common.js'

export const WEBHOOK_LABEL_PATTERN = '^[A-Za-z0-9_-]{1,32}$'

export const WebhookBody = Type.Object({
  label: Type.Optional(Type.String({ pattern: WEBHOOK_LABEL_PATTERN })),
  enabled: Type.Boolean(),
  url: Type.String({ pattern: '^https?://', maxLength: 2048 }),
  authorization: Type.Optional(Type.String({ maxLength: 1024 })),
  byEvents: Type.Optional(Type.Boolean()),
  events: Type.Optional(Type.Array(Type.Enum(['instance.state']), { maxItems: 16 }))
})
export type WebhookInput = Static<typeof WebhookBody>

export const WebhookView = Type.Object({
  label: Type.String(),
  enabled: Type.Boolean(),
  url: Type.String(),
  byEvents: Type.Boolean(),
  events: Type.Array(Type.String()),
  hasAuthorization: Type.Boolean()
})
export type WebhookViewType = Static<typeof WebhookView>

export const SaveWebhookReply = Type.Object({
  success: Type.Literal(true),
  message: Type.Literal('Webhook saved'),
  webhook: WebhookView,
  /** The HMAC key for X-Webhook-Signature, shown once: when the instance's first webhook is saved. */
  signingSecret: Type.Optional(Type.String())
})

export const GetWebhookQuery = Type.Object({
  label: Type.Optional(Type.String({ pattern: WEBHOOK_LABEL_PATTERN }))
})

export const GetWebhookReply = Type.Object({
  success: Type.Literal(true),
  message: Type.String(),
  webhooks: Type.Array(WebhookView)
})

export const DeadLettersReply = Type.Object({
  success: Type.Literal(true),
  message: Type.String(),
  deadLetters: Type.Array(Type.Object({
    id: Type.String(),
    label: Type.String(),
    url: Type.String(),
    attempts: Type.Integer(),
    lastError: NullableString,
    failedAt: Type.String(),
    event: Type.Unknown()
  }))
})
