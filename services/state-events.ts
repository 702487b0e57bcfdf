import { randomUUID } from 'node:crypto'
import type { EventBus } from '../bus/bus.js'
import type { ConnectionState, DesiredState, InstanceRecord, Store } from '../stores/store.js'
import type { WebhookDispatcher } from './webhooks/webhook-service.js'

export interface StateChange {
  state: ConnectionState
  previousState: ConnectionState | null
  detail: string
  statusCode: number | null
  numberJid: string | null
  desired?: DesiredState
  qrCode?: string
  qrCodeBase64?: string
}

export type StateRecorder = (instance: Pick<InstanceRecord, 'id' | 'accountId' | 'name'>, change: StateChange) => Promise<void>

/**
 * The one place an instance's state is changed: the change and its event
 * number are stored in one atomic step, the event is queued for the
 * instance's webhooks (on this replica only, so exactly once), then published
 * to /ws subscribers everywhere. A change to an instance deleted meanwhile is
 * dropped, event included.
 */
export function createStateRecorder ({ store, bus, webhooks }: { store: Store, bus: EventBus, webhooks: WebhookDispatcher }): StateRecorder {
  return async (instance, change) => {
    const { state, previousState, detail, statusCode, numberJid, desired, qrCode, qrCodeBase64 } = change
    const connection = { state, detail, numberJid }
    const updated = await store.updateInstance(instance.id, desired === undefined ? { connection } : { connection, desired }, { nextSeq: true })
    if (updated === null) return
    const event = {
      id: randomUUID(),
      seq: updated.seq,
      accountId: instance.accountId,
      instanceId: instance.id,
      instance: instance.name,
      state,
      previousState,
      detail,
      statusCode,
      at: updated.updatedAt,
      ...(qrCode === undefined ? {} : { qrCode, qrCodeBase64 })
    }
    await webhooks.dispatch(updated, event)
    await bus.publish(event)
  }
}
