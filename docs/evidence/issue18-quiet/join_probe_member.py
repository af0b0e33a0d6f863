import sys, time, subprocess, os
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
boot, mode = sys.argv[1], sys.argv[2]
def member(inst, group):
    t0=time.monotonic()
    conf={"bootstrap.servers":boot,"group.id":group,"session.timeout.ms":6000,"heartbeat.interval.ms":1000,
          "partition.assignment.strategy":"cooperative-sticky"}
    if inst: conf["group.instance.id"]=inst
    got=[]
    c=Consumer(conf); c.subscribe(["probe"], on_assign=lambda c,p: got.append(time.monotonic()))
    while not got: c.poll(0.05)
    print(f"{mode} assigned after {got[0]-t0:.2f}s", flush=True)
    while True: c.poll(0.1)
if mode=="child": member(sys.argv[3] or None, sys.argv[4])
