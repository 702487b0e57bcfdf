import type { ConnectionState } from '../stores/store.js'

/** One state change of one instance, as recorded by services/state-events.ts. */
export interface InstanceStateEvent {
  /** Unique per event: the same id on /ws and on webhooks, so consumers can deduplicate. */
  id: string
  /** Rises by one per instance, so a consumer can see a gap and re-read the list. */
  seq: number
  accountId: string
  instanceId: string
  instance: string
  state: ConnectionState
  /** null for an instance's first event and for snapshots. */
  previousState: ConnectionState | null
  /** The sub-phase or cause: created, reconnect_requested, qr_ready, network_error, logged_out, … */
  detail: string
  /** The WhatsApp / Baileys close code behind the change, when there was one. */
  statusCode: number | null
  at: string
  qrCode?: string
  qrCodeBase64?: string
}

export interface InstanceStateEnvelope {
  event: 'instance.state'
  data: Pick<InstanceStateEvent, 'instance' | 'state' | 'previousState' | 'detail' | 'statusCode' | 'at' | 'qrCode' | 'qrCodeBase64'>
  instanceData: { baseUrl: string, instance: string }
  id: string
  seq: number
}

/** RyzeAPI's event shape, the same on /ws and webhooks; internal ids (account, instance id) stay inside. */
export function toEnvelope (event: InstanceStateEvent, baseUrl: string): InstanceStateEnvelope {
  const { instance, state, previousState, detail, statusCode, at, qrCode, qrCodeBase64 } = event
  return {
    event: 'instance.state',
    data: { instance, state, previousState, detail, statusCode, at, ...(qrCode === undefined ? {} : { qrCode, qrCodeBase64 }) },
    instanceData: { baseUrl, instance },
    id: event.id,
    seq: event.seq
  }
}
