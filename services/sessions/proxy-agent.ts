import type { Agent } from 'node:https'
import { HttpsProxyAgent } from 'https-proxy-agent'
import { SocksProxyAgent } from 'socks-proxy-agent'
import type { ProxyRecord } from '../../stores/store.js'
import type { SecretBox } from '../secret-box.js'

/** The agent that carries an instance's WhatsApp WebSocket (and media fetches) through its proxy. */
export function proxyAgentFor (proxy: ProxyRecord | null, secretBox: SecretBox): Agent | undefined {
  if (proxy === null || !proxy.enabled) return undefined
  const url = new URL(`${proxy.protocol === 'socks5' ? 'socks5' : proxy.protocol}://${proxy.host}:${proxy.port}`)
  if (proxy.username !== null) url.username = proxy.username
  if (proxy.passwordSealed !== null) url.password = secretBox.open(proxy.passwordSealed)
  // HttpsProxyAgent speaks CONNECT to an http:// or https:// proxy. Both agents are agent-base agents,
  // which serve http and https requests alike; Baileys merely types its option as an https.Agent.
  const agent = proxy.protocol === 'socks5' ? new SocksProxyAgent(url) : new HttpsProxyAgent(url)
  return agent as unknown as Agent
}
