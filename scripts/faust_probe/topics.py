"""Create (or describe) the source/sink topics with 3 partitions. Faust only
creates its internal topics (changelog, assignor); Tansu auto-creates
unknown topics with its own default partition count, so pre-create."""
import asyncio, os, sys
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka import AIOKafkaConsumer

BOOT = os.environ.get("BOOT", "127.0.0.1:19100")

async def main(create):
    if create:
        a = AIOKafkaAdminClient(bootstrap_servers=BOOT)
        await a.start()
        try:
            r = await a.create_topics([NewTopic(t, 3, 1) for t in ("in", "out")])
            print("create:", r)
        finally:
            await a.close()
    c = AIOKafkaConsumer(bootstrap_servers=BOOT)
    await c.start()
    try:
        for t in sorted(await c.topics()):
            print("TOPIC", t, sorted(c.partitions_for_topic(t) or []))
    finally:
        await c.stop()

asyncio.run(main("create" in sys.argv[1:]))
