import { Curve } from '@whiskeysockets/baileys'
import t from 'tap'
import { installStrictCertificateVerify } from '../../services/sessions/certificate-verify.js'
import { generateKeyPair, signXEdDSA } from '../support/wa-server/crypto.js'

t.test('the installed verify accepts only real signatures, and remembers the good ones', async t => {
  const original = Curve.verify
  t.teardown(() => { Curve.verify = original })
  const signer = generateKeyPair()
  const message = Buffer.from('certificate details')
  const signature = signXEdDSA(signer.private, message)
  const forged = Buffer.alloc(64, 7)

  t.ok(original(signer.public, message, forged), 'Baileys rc14 on its own accepts a forged signature (the bug)')
  installStrictCertificateVerify()
  t.notOk(Curve.verify(signer.public, message, forged), 'refused once the strict verify is installed')
  t.notOk(Curve.verify(signer.public, Buffer.from('other details'), signature), 'a real signature over other bytes is refused')
  t.notOk(Curve.verify(generateKeyPair().public, message, signature), 'and so is one from another key')
  t.notOk(Curve.verify(signer.public, message, Buffer.alloc(10)), 'a malformed signature is refused, not thrown')

  t.ok(Curve.verify(signer.public, message, signature), 'a real signature is accepted')
  t.ok(Curve.verify(signer.public, message, signature), 'and again, from memory')
  t.notOk(Curve.verify(signer.public, message, forged), 'remembering a good signature never admits a bad one')
})
