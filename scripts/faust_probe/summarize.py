"""Turn harness RESULT lines (files given as args) into markdown tables."""
import json, sys

COLS = {
    "basic": ["rep", "worker_start_to_ready_s", "produce_start_to_all_processed_s", "all_processed",
              "out_msgs", "dup_out", "missing", "table_sum", "keys_wrong"],
    "restart": ["rep", "processed_before_kill", "kill_to_recovery_complete_s", "kill_to_first_proc_s", "hang",
                "out_msgs", "dup_out", "missing", "missing_sample", "table_sum", "over_count", "under_count", "read_complete"],
    "rebalance": ["rep", "killed", "w1_start_to_first_proc_s", "max_proc_gap_during_join_s",
                  "kill_to_survivor_next_proc_s", "max_proc_gap_after_kill_s", "hang", "out_msgs", "dup_out",
                  "missing", "table_sum", "over_count", "under_count", "read_complete"],
    "sigterm": ["rep", "when", "sigterm_to_exit_s", "exit_rc", "hang", "out_msgs", "dup_out", "missing",
                "table_sum", "over_count", "under_count"],
}

for path in sys.argv[1:]:
    rows = [json.loads(l[7:] if l.startswith("RESULT ") else l) for l in open(path) if l.strip()]
    if not rows:
        continue
    cols = COLS[rows[0]["exp"]]
    print(f"\n`{path}`\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
