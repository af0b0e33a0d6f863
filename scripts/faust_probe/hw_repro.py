"""Minimal Tansu repro: does ListOffsets(latest) report last_offset+1 after a
multi-record batch?  Sends single-record batches, then one 5-record batch."""
import asyncio, os
from aiokafka import AIOKafkaProducer, AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOT = os.environ.get("BOOT", "127.0.0.1:19103")

async def end_and_count(tp):
    c = AIOKafkaConsumer(bootstrap_servers=BOOT, enable_auto_commit=False)
    await c.start()
    try:
        c.assign([tp]); await c.seek_to_beginning(tp)
        end = (await c.end_offsets([tp]))[tp]
        offs = []
        while True:
            b = await c.getmany(timeout_ms=1500)
            if not b: break
            offs += [m.offset for ms in b.values() for m in ms]
        return end, len(offs), max(offs, default=None)
    finally:
        await c.stop()

async def main():
    a = AIOKafkaAdminClient(bootstrap_servers=BOOT); await a.start()
    await a.create_topics([NewTopic("hw", 1, 1)]); await a.close()
    tp = TopicPartition("hw", 0)
    p = AIOKafkaProducer(bootstrap_servers=BOOT, linger_ms=50); await p.start()
    for i in range(3):
        await p.send_and_wait("hw", b"single")
    print("after 3 single-record batches: end=%s read=%s max_offset=%s" % await end_and_count(tp))
    futs = [await p.send("hw", b"batched") for _ in range(5)]
    await asyncio.gather(*futs)
    print("after +1 batch of 5 records:   end=%s read=%s max_offset=%s" % await end_and_count(tp))
    await p.stop()

asyncio.run(main())
