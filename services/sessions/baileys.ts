/**
 * The one door through which the app loads Baileys: the protobuf fix below
 * must be in place before Baileys' generated code is evaluated, and ES
 * modules evaluate their imports in order.
 */
import './protobuf-one-of.js'

export * from '@whiskeysockets/baileys'
export { default } from '@whiskeysockets/baileys'
