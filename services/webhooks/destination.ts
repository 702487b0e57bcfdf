import { lookup } from 'node:dns/promises'
import ipaddr from 'ipaddr.js'

/**
 * Webhook targets must be public addresses, so the service cannot be used to
 * probe the network it runs in (loopback, link-local, private, CGNAT, …).
 * The check runs when a URL is saved and again at every delivery, on every
 * address the name resolves to, so a DNS answer that changes later is caught.
 */
export function isPublicAddress (address: string): boolean {
  if (!ipaddr.isValid(address)) return false
  let parsed = ipaddr.parse(address)
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address()
  return parsed.range() === 'unicast'
}

/** A reason the URL may not be used, or null. Literal addresses and localhost are judged without DNS. */
export function refuseLiteralDestination (url: URL): string | null {
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (host === 'localhost' || host.endsWith('.localhost')) return `${host} is a loopback name`
  if (ipaddr.isValid(host) && !isPublicAddress(host)) return `${host} is not a public address`
  return null
}

/** Resolves the URL's host and refuses it unless every address is public. */
export async function refuseResolvedDestination (url: URL): Promise<string | null> {
  const literal = refuseLiteralDestination(url)
  if (literal !== null) return literal
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (ipaddr.isValid(host)) return null
  const addresses = await lookup(host, { all: true })
  const private_ = addresses.find(({ address }) => !isPublicAddress(address))
  return private_ === undefined ? null : `${host} resolves to ${private_.address}, which is not a public address`
}
