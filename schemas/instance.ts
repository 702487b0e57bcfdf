import Type, { type Static } from 'typebox'
import { NullableInteger, NullableProxyProtocol, NullableString } from './common.js'

export const INSTANCE_NAME_PATTERN = '^[A-Za-z0-9_.-]{1,64}$'

export const ConnectionState = Type.Enum(['connected', 'connecting', 'disconnected', 'loggedout'])
export const ProxyProtocol = Type.Enum(['http', 'https', 'socks5'])

const Host = Type.String({ minLength: 1, maxLength: 253 })
const Port = Type.Integer({ minimum: 1, maximum: 65535 })

export const CreateInstanceBody = Type.Object({
  name: Type.String({ pattern: INSTANCE_NAME_PATTERN }),
  token: Type.Optional(Type.String({ minLength: 16, maxLength: 256 })),
  proxyEnabled: Type.Optional(Type.Boolean()),
  proxyProtocol: Type.Optional(ProxyProtocol),
  proxyHost: Type.Optional(Host),
  proxyPort: Type.Optional(Port),
  proxyUsername: Type.Optional(Type.String({ maxLength: 256 })),
  proxyPassword: Type.Optional(Type.String({ maxLength: 256 })),
  webhookEnabled: Type.Optional(Type.Boolean()),
  webhookUrl: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2048 })),
  webhookByEvents: Type.Optional(Type.Boolean()),
  webhookEvents: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 32 })),
  webhookAuthorization: Type.Optional(Type.String({ maxLength: 1024 }))
})
export type CreateInstanceInput = Static<typeof CreateInstanceBody>

export const CreateInstanceReply = Type.Object({
  success: Type.Literal(true),
  message: Type.Literal('Instance created'),
  instance: Type.Object({
    name: Type.String(),
    token: Type.String(),
    status: Type.Literal('disconnected'),
    /** Present when the request configured a webhook: the key of X-Webhook-Signature, shown once. */
    webhookSigningSecret: Type.Optional(Type.String())
  })
})

export const ProxyBody = Type.Object({
  enabled: Type.Boolean(),
  protocol: ProxyProtocol,
  host: Host,
  port: Port,
  username: Type.Optional(Type.String({ maxLength: 256 })),
  password: Type.Optional(Type.String({ maxLength: 256 }))
})
export type ProxyInput = Static<typeof ProxyBody>

/** A proxy as the API shows it: never the password. */
export const ProxyView = Type.Object({
  enabled: Type.Boolean(),
  protocol: NullableProxyProtocol,
  host: NullableString,
  port: NullableInteger,
  username: NullableString,
  hasPassword: Type.Boolean()
})
export type ProxyViewType = Static<typeof ProxyView>

export const ProxyReply = Type.Object({
  success: Type.Literal(true),
  message: Type.String(),
  proxy: ProxyView
})

export const WebhookSummary = Type.Object({
  label: Type.String(),
  enabled: Type.Boolean(),
  url: Type.String(),
  byEvents: Type.Boolean(),
  events: Type.Array(Type.String())
})


export const InstanceView = Type.Object({
  name: Type.String(),
  connection: Type.Object({
    state: ConnectionState,
    numberJid: NullableString,
    displayStatus: Type.String()
  }),
  profile: Type.Object({
    name: NullableString,
    pictureUrl: NullableString,
    isBusiness: Type.Boolean(),
    businessName: NullableString
  }),
  proxy: Type.Object({
    enabled: Type.Boolean(),
    protocol: NullableProxyProtocol,
    host: NullableString,
    port: NullableInteger
  }),
  webhooks: Type.Array(WebhookSummary),
  createdAt: Type.String(),
  updatedAt: Type.String()
})
export type InstanceViewType = Static<typeof InstanceView>

export const ListInstancesQuery = Type.Object({
  instanceName: Type.Optional(Type.String({ maxLength: 4096 }))
})

export const ListInstancesReply = Type.Object({
  success: Type.Literal(true),
  message: Type.String(),
  instances: Type.Array(InstanceView)
})

export const ConnectQuery = Type.Object({
  number: Type.Optional(Type.String({ pattern: '^[0-9]{6,20}$' }))
})

export const ConnectReply = Type.Union([
  Type.Object({
    success: Type.Literal(true),
    message: Type.Literal('QR code generated'),
    qrCode: Type.String(),
    qrCodeBase64: Type.String(),
    status: Type.Literal('qr')
  }),
  Type.Object({
    success: Type.Literal(true),
    message: Type.Literal('Pairing code generated'),
    pairingCode: Type.String(),
    status: Type.Literal('pairing')
  }),
  Type.Object({
    success: Type.Literal(true),
    message: Type.Literal('Instance already connected'),
    status: Type.Literal('connected')
  })
])
export type ConnectReplyType = Static<typeof ConnectReply>

export const ReconnectReply = Type.Object({
  success: Type.Literal(true),
  message: Type.Literal('Reconnect initiated'),
  status: Type.Literal('connecting')
})

export const LogoutReply = Type.Object({
  success: Type.Literal(true),
  message: Type.Literal('Instance logged out'),
  instance: Type.Object({ status: Type.Literal('loggedout') })
})

export const DeleteReply = Type.Object({
  success: Type.Literal(true),
  message: Type.Literal('Instance deleted'),
  instance: Type.Object({ status: Type.Literal('deleted') })
})
