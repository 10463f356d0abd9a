"""Loads a Parquet file of raw events into a BigQuery table with Google's official client
(google-cloud-bigquery), as a team's own loader would; the tests and the demo point it at a
local emulator.

    load.py --endpoint http://127.0.0.1:PORT --project demo --table raw.transactions FILE.parquet
"""
import argparse
import io

import pyarrow.parquet as pq
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

TYPES = {"int64": "INT64", "double": "FLOAT64", "float": "FLOAT64", "string": "STRING", "bool": "BOOL"}


def bq_type(arrow_type):
    name = str(arrow_type)
    if name.startswith("timestamp"):
        return "TIMESTAMP"
    return TYPES[name]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--table", required=True, help="DATASET.TABLE")
    p.add_argument("parquet")
    a = p.parse_args()
    client = bigquery.Client(project=a.project, credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=a.endpoint))
    dataset, table = a.table.split(".")
    client.create_dataset(dataset, exists_ok=True)
    data = pq.read_table(a.parquet)
    schema = [bigquery.SchemaField(f.name, bq_type(f.type)) for f in data.schema]
    ref = f"{a.project}.{dataset}.{table}"
    client.delete_table(ref, not_found_ok=True)
    client.create_table(bigquery.Table(ref, schema=schema))
    buf = io.BytesIO()
    pq.write_table(data, buf)
    buf.seek(0)
    job = client.load_table_from_file(buf, ref, job_config=bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET, schema=schema))
    job.result()
    print(f"{client.get_table(ref).num_rows} rows in {ref}")


if __name__ == "__main__":
    main()
