-- The latest event of each key: the row of the highest event time.
SELECT event_key, amount, ts AS last_ts
FROM (
  SELECT event_key, amount, ts,
    ROW_NUMBER() OVER (PARTITION BY event_key ORDER BY event_time DESC) AS row_num
  FROM events
)
WHERE row_num = 1
