#!/usr/bin/env python3
"""Reads a few users' online features back from Redis with Feast's own code: the key from
feast's serialize_entity_key (v3) plus the project, the fields from its murmur3 hashing, the
values decoded as feast.types.Value. Run with the Feast virtualenv (.venv-feast).

Usage: online_features.py REDIS_URL USER_ID...
"""
import sys
from datetime import datetime, timezone

import redis
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

PROJECT, VIEW = "fraud_detection", "user_transaction_features"
FEATURES = ["transaction_count_1h", "transaction_count_24h", "avg_transaction_amount_7d",
            "avg_transaction_amount_30d", "max_transaction_amount_7d", "distinct_merchant_count_7d"]

r = redis.Redis.from_url(sys.argv[1])
for user in map(int, sys.argv[2:]):
    key = serialize_entity_key(EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=user)]), 3)
    fields = [_mmh3(f"{VIEW}:{f}") for f in FEATURES] + [f"_ts:{VIEW}".encode()]
    got = r.hmget(key + PROJECT.encode(), fields)
    if got[-1] is None:
        print(f"  user_id={user}: not in the online store")
        continue
    ts = Timestamp.FromString(got[-1]).ToDatetime(tzinfo=timezone.utc)
    values = []
    for name, raw in zip(FEATURES, got[:-1]):
        v = Value.FromString(raw or b"")
        which = v.WhichOneof("val")
        x = getattr(v, which) if which else None
        values.append(f"{name}={round(x, 2) if isinstance(x, float) else x}")
    print(f"  user_id={user} as of {ts:%Y-%m-%d %H:%M:%S}: " + "  ".join(values))
