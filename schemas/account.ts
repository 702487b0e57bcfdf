import Type from 'typebox'

export const CreateAccountBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 128 })
}, { additionalProperties: false })

export const AccountSummary = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdAt: Type.String()
})

export const CreateAccountReply = Type.Object({
  success: Type.Literal(true),
  message: Type.Literal('Account created'),
  account: Type.Object({ id: Type.String(), name: Type.String(), token: Type.String() })
})

export const ListAccountsReply = Type.Object({
  success: Type.Literal(true),
  message: Type.String(),
  accounts: Type.Array(AccountSummary)
})
