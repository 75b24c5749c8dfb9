-- Closed hourly windows only: a window is written once the watermark passes its end.
SELECT
  merchant,
  TUMBLE_START(event_time, INTERVAL '1' HOUR) AS window_start,
  COUNT(*) AS authorizations,
  SUM(CASE WHEN status = 'declined' THEN 1 ELSE 0 END) AS declines,
  SUM(amount_cents) AS amount_cents
FROM authorizations
GROUP BY merchant, TUMBLE(event_time, INTERVAL '1' HOUR)
