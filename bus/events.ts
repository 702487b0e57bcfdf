import type { ConnectionState } from '../stores/store.js'

/** One state change of one instance, as the session service records it. */
export interface InstanceStateEvent {
  accountId: string
  instanceId: string
  instance: string
  state: ConnectionState
  previousState: ConnectionState | null
  /** The sub-phase or cause: reconnect_requested, qr_ready, network_error, logged_out, … */
  detail: string
  /** The WhatsApp / Baileys close code behind the change, when there was one. */
  statusCode: number | null
  at: string
  qrCode?: string
  qrCodeBase64?: string
}
