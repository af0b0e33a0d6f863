"""Produce N messages over K keys (key k00..), paced at RATE msg/s.
Each value is {"seq": i}; seq is globally unique so the checker can spot
loss and duplicates."""
import asyncio, json, os, sys, time
from aiokafka import AIOKafkaProducer

async def main(n=300, keys=30, rate=10.0, start=0):
    p = AIOKafkaProducer(bootstrap_servers=os.environ.get("BOOT", "127.0.0.1:19100"), acks="all")
    await p.start()
    try:
        for i in range(start, start + n):
            await p.send_and_wait("in", key=f"k{i % keys:02d}".encode(), value=json.dumps({"seq": i}).encode())
            if i % 50 == 0:
                print(f"PRODUCED {time.time():.3f} seq={i}", flush=True)
            if rate > 0:
                await asyncio.sleep(1.0 / rate)
        print(f"PRODUCED_DONE {time.time():.3f} n={n}", flush=True)
    finally:
        await p.stop()

if __name__ == "__main__":
    a = [float(x) for x in sys.argv[1:]]
    asyncio.run(main(int(a[0]) if a else 300, int(a[1]) if len(a) > 1 else 30,
                     a[2] if len(a) > 2 else 10.0, int(a[3]) if len(a) > 3 else 0))
