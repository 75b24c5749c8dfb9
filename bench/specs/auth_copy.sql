SELECT auth_id, account, amount_cents, status
FROM authorizations
