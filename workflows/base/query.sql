-- The raw events of features.yaml's source for one run: extract-bigquery binds the named TIMESTAMP
-- parameters start and end (the interval to fetch). Replace the table with yours; keep the columns.
SELECT user_id, event_timestamp, amount, merchant_id
FROM `my-project.payments.transactions`
WHERE event_timestamp >= @start AND event_timestamp < @end
