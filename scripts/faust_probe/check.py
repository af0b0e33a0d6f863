"""Read `out` and the table's changelog topic from the beginning and report:
distinct seqs processed, duplicates, missing, and final table value per key
(last changelog record per key) vs the expected count."""
import asyncio, json, os, sys, collections
from aiokafka import AIOKafkaConsumer, TopicPartition

BOOT = os.environ.get("BOOT", "127.0.0.1:19100")
SPANS = {}  # topic -> {partition: [beginning, end]} as the broker reports them
EXPECTED = {}  # topic -> number of records between beginning and end offsets

async def read_all(topic, idle=3.0):
    c = AIOKafkaConsumer(bootstrap_servers=BOOT, enable_auto_commit=False, auto_offset_reset="earliest")
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        end = await c.end_offsets(tps)
        beg = await c.beginning_offsets(tps)
        EXPECTED[topic] = sum(end[tp] - beg[tp] for tp in tps)
        SPANS[topic] = {tp.partition: [beg[tp], end[tp]] for tp in tps}
        out = []
        async def behind():
            for tp in tps:
                if await c.position(tp) < end[tp]:
                    return True
            return False
        while await behind():
            batch = await c.getmany(timeout_ms=int(idle * 1000))
            if not batch:
                break
            for _, msgs in batch.items():
                out.extend(msgs)
        for tp in tps:  # what was actually read per partition: count, min and max offset
            offs = [m.offset for m in out if m.partition == tp.partition]
            SPANS[topic][tp.partition] += [len(offs), min(offs, default=None), max(offs, default=None)]
        return out
    finally:
        await c.stop()

async def main(n, keys, app_id):
    outs = await read_all("out")
    seqs = collections.Counter(json.loads(m.value)["seq"] for m in outs)
    dups = sum(v - 1 for v in seqs.values() if v > 1)
    missing = sorted(set(range(n)) - set(seqs))
    cl = await read_all(f"{app_id}-counts-changelog")
    table = {}
    for m in cl:
        table[m.key.decode().strip('"')] = json.loads(m.value)
    exp = collections.Counter(f"k{i % keys:02d}" for i in range(n))
    wrong = {k: (table.get(k), v) for k, v in exp.items() if table.get(k) != v}
    over = sum(max(0, (table.get(k) or 0) - v) for k, v in exp.items())
    under = sum(max(0, v - (table.get(k) or 0)) for k, v in exp.items())
    res = dict(read_complete=(len(outs) == EXPECTED.get("out") and len(cl) == EXPECTED.get(f"{app_id}-counts-changelog")),
               offsets_span=dict(EXPECTED), partition_spans_beg_end_nread_min_max=SPANS, changelog_msgs=len(cl),
               out_msgs=len(outs), distinct_seq=len(seqs), dup_out=dups, missing=len(missing),
               missing_sample=missing[:10], table_keys=len(table), table_sum=sum(table.values()),
               expected_sum=n, keys_wrong=len(wrong), over_count=over, under_count=under,
               wrong_sample=dict(list(wrong.items())[:5]))
    # forensic detail for lost seqs: what `out` and the changelog hold for that key
    detail = {}
    for sq in missing[:3]:
        k = f"k{sq % keys:02d}"
        detail[sq] = dict(
            out=[(m.partition, m.offset, json.loads(m.value)["seq"], json.loads(m.value)["count"], json.loads(m.value)["w"])
                 for m in outs if m.key.decode() == k],
            changelog=[(m.partition, m.offset, json.loads(m.value)) for m in cl if m.key.decode().strip('"') == k])
    res["missing_detail"] = detail
    print("CHECK " + json.dumps(res), flush=True)

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    app_id = sys.argv[3] if len(sys.argv) > 3 else os.environ.get("APP_ID", "fprobe")
    asyncio.run(main(n, keys, app_id))
