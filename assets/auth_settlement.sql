SELECT
  a.auth_id,
  a.account,
  a.amount_cents AS authorized_cents,
  s.settled_cents,
  s.settlement_id
FROM authorizations AS a
JOIN settlements AS s ON a.auth_id = s.auth_id
