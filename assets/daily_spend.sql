-- Approved spend per account and UTC day. Declined authorizations do not count.
SELECT
  account,
  CAST(event_time AS DATE) AS spend_day,
  COUNT(*) AS authorizations,
  SUM(amount_cents) AS spend_cents
FROM authorizations
WHERE status = 'approved'
GROUP BY account, CAST(event_time AS DATE)
