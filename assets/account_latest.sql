-- The latest authorization of each account: the row of the highest event time.
SELECT account, auth_id, merchant, amount_cents, status, ts AS last_ts
FROM (
  SELECT
    account, auth_id, merchant, amount_cents, status, ts,
    ROW_NUMBER() OVER (PARTITION BY account ORDER BY event_time DESC) AS row_num
  FROM authorizations
)
WHERE row_num = 1
