-- The raw events of features.yaml's source for @start <= event_timestamp < @end: extract-bigquery
-- binds both as TIMESTAMP query parameters. Replace the table with yours; keep the columns.
SELECT user_id, event_timestamp, amount, merchant_id
FROM `my-project.payments.transactions`
WHERE event_timestamp >= @start AND event_timestamp < @end
