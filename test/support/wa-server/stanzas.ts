// Stanzas the fake server sends on its own initiative: default iq answers (§10) and the
// disconnect nodes whose Baileys status codes are measured in §9 of docs/whatsapp-test-server.md.
import type { BinaryNode } from '@whiskeysockets/baileys'

export const SERVER_JID = '@s.whatsapp.net'

export type KickReason =
  | 'logged_out'
  | 'logged_out_failure'
  | 'forbidden'
  | 'restart_required'
  | 'replaced'
  | 'unavailable'
  | 'bad_session'
  | 'stream_end'
  | 'multidevice_mismatch'
  | { streamErrorCode: number }

export function kickNode(reason: KickReason): BinaryNode {
  if (typeof reason === 'object') {
    return streamError({ code: String(reason.streamErrorCode) })
  }
  switch (reason) {
    case 'logged_out':
      return streamError({ code: '401' }, { tag: 'conflict', attrs: { type: 'device_removed' } })
    case 'logged_out_failure':
      return { tag: 'failure', attrs: { reason: '401', location: 'fake' } }
    case 'forbidden':
      return { tag: 'failure', attrs: { reason: '403', location: 'fake' } }
    case 'restart_required':
      return streamError({ code: '515' })
    case 'replaced':
      // No code attribute: Baileys maps the <conflict> child to 440 itself.
      return streamError({}, { tag: 'conflict', attrs: { type: 'replaced' } })
    case 'unavailable':
      return streamError({ code: '503' })
    case 'bad_session':
      // A child Baileys has no code for, and no code attribute: it falls back to 500.
      return streamError({}, { tag: 'xml-not-well-formed', attrs: {} })
    case 'stream_end':
      return { tag: 'xmlstreamend', attrs: {} }
    case 'multidevice_mismatch':
      return { tag: 'ib', attrs: { from: SERVER_JID }, content: [{ tag: 'downgrade_webclient', attrs: {} }] }
    default:
      throw new Error(`unknown kick reason ${JSON.stringify(reason)}`)
  }
}

function streamError(attrs: Record<string, string>, child?: BinaryNode): BinaryNode {
  return child ? { tag: 'stream:error', attrs, content: [child] } : { tag: 'stream:error', attrs }
}

/** The kick reasons after which a real server forgets the device (it must pair again). */
export function isLogoutKick(reason: KickReason): boolean {
  return reason === 'logged_out' || reason === 'logged_out_failure'
}

export function failureNode(reason: number): BinaryNode {
  return { tag: 'failure', attrs: { reason: String(reason), location: 'fake' } }
}

export function firstChildTag(node: BinaryNode): string | undefined {
  return Array.isArray(node.content) ? node.content[0]?.tag : undefined
}

export function iqResult(request: BinaryNode, content?: BinaryNode[]): BinaryNode {
  const attrs = { from: SERVER_JID, type: 'result', id: request.attrs.id ?? '' }
  return content ? { tag: 'iq', attrs, content } : { tag: 'iq', attrs }
}

const PRIVACY_DEFAULTS: Record<string, string> = {
  last: 'all',
  online: 'all',
  profile: 'all',
  status: 'all',
  readreceipts: 'all',
  groupadd: 'all',
  calladd: 'all',
  messages: 'all'
}

/** Answers that make Baileys' login path take its normal branch; everything else gets a bare result. */
export function defaultIqAnswer(request: BinaryNode, preKeyCount: number): BinaryNode {
  const { xmlns, type } = request.attrs
  const child = firstChildTag(request)
  if (xmlns === 'encrypt' && type === 'get' && child === 'count') {
    return iqResult(request, [{ tag: 'count', attrs: { value: String(preKeyCount) } }])
  }
  if (xmlns === 'encrypt' && type === 'get' && child === 'digest') {
    return iqResult(request, [{ tag: 'digest', attrs: {} }])
  }
  if (xmlns === 'abt' && type === 'get' && child === 'props') {
    return iqResult(request, [{ tag: 'props', attrs: { protocol: '1', hash: 'fakehash' } }])
  }
  if (xmlns === 'blocklist' && type === 'get') {
    return iqResult(request, [{ tag: 'list', attrs: {} }])
  }
  if (xmlns === 'privacy' && type === 'get' && child === 'privacy') {
    const categories = Object.entries(PRIVACY_DEFAULTS).map(([name, value]) => ({
      tag: 'category',
      attrs: { name, value }
    }))
    return iqResult(request, [{ tag: 'privacy', attrs: {}, content: categories }])
  }
  return iqResult(request)
}
