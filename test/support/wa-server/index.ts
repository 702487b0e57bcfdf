// A local WhatsApp Web protocol server for tests; the real, unmodified Baileys client connects
// to it. Protocol facts: docs/whatsapp-test-server.md.
export { generateTrustRoot, keyPairFromPrivate, verifyXEdDSA, type KeyPair } from './crypto.js'
export { installStrictCurveVerify, installTestTrustRoot } from './trust.js'
export { memoryAuthState, savedSessionCreds } from './auth.js'
export {
  startFakeWhatsAppServer,
  type FakeWhatsAppServer,
  type FakeWhatsAppServerOptions,
  type IqAnswer,
  type IqMatch,
  type KickReason
} from './server.js'
