"""Minimal faust app: consume `in` (3 partitions), count per key in a
changelog-backed Table, emit to `out`.  Each processed event is printed as
PROC <wall_ts> <key> <seq> <count> so the harness can time resume points."""
import os, time, json
import faust

BROKER = os.environ.get("BROKER", "kafka://127.0.0.1:19100")
APP_ID = os.environ.get("APP_ID", "fprobe")
WORKER = os.environ.get("WORKER", "w0")

app = faust.App(
    APP_ID,
    broker=BROKER,
    store="memory://",                     # no rocksdb: recovery = full changelog replay
    topic_partitions=3,
    topic_replication_factor=1,
    web_enabled=False,
    web_port=int(os.environ.get("WEB_PORT", "16066")),   # web still binds in 0.15.3; unique per worker
    datadir=os.environ.get("DATADIR", f"/tmp/faust_probe/data-{WORKER}"),
    # group-membership timings tuned for Tansu (seconds)
    broker_session_timeout=6.0,
    broker_heartbeat_interval=0.5,
    broker_rebalance_timeout=20.0,
    broker_request_timeout=30.0,
    broker_commit_interval=1.0,
    broker_commit_every=50,
    consumer_auto_offset_reset="earliest",
    table_standby_replicas=int(os.environ.get("STANDBYS", "1")),
    processing_guarantee=os.environ.get("GUARANTEE", "at_least_once"),
    stream_wait_empty=True,                 # faust default, kept on purpose
)

in_topic = app.topic("in", key_type=str, value_type=bytes, value_serializer="raw", partitions=3)
out_topic = app.topic("out", key_type=str, value_type=bytes, value_serializer="raw", partitions=3)
counts = app.Table("counts", default=int, partitions=3, key_type=str, value_type=int)


@app.agent(in_topic)
async def count(stream):
    async for ev in stream.events():
        key = ev.key
        seq = json.loads(ev.value)["seq"]
        counts[key] += 1
        c = counts[key]
        await out_topic.send(key=key, value=json.dumps({"seq": seq, "count": c, "w": WORKER}).encode())
        print(f"PROC {time.time():.3f} {key} {seq} {c} p{ev.message.partition}", flush=True)


if __name__ == "__main__":
    app.main()
