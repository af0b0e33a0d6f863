"""The embedded broker's CPU seconds over 30 s while a whole stack sits idle (D-061)."""
import os, time, tempfile
from pathlib import Path
from radstream.services.stack import Stack
from radstream.streams.config import Config

home = Path(tempfile.mkdtemp(prefix="idle-cpu-"))
config = Config.from_env(env={**os.environ, "RADSTREAM_HOME": str(home)})
with Stack(config, None) as stack:
    stack.wait_ready(300)
    time.sleep(10)
    pid = stack.broker._proc.pid
    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    c0, t0 = cpu(), time.monotonic()
    while time.monotonic() - t0 < 30:
        stack.poll(); time.sleep(0.5)
    used = cpu() - c0
    print(f"fetch wait {os.environ.get('RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS', 'default')} ms: broker CPU {used:.2f} s in 30 s idle ({100 * used / 30:.1f} % of a core)")
