#!/usr/bin/env bash
# Regenerates the README's accuracy tables from the measurements in bench/data (llmem validate --markdown), and
# the table of each held-out set's blind result from the validate output saved when the set was measured
# (bench/data/transformers_holdout*_validate_<commit>.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
LLMEM=${LLMEM:-build/llmem}
if [ ! -x "$LLMEM" ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build --target llmem_cli >/dev/null
fi
holdout_files=(bench/data/transformers_holdout.jsonl bench/data/transformers_holdout2.jsonl
               bench/data/transformers_holdout3.jsonl bench/data/transformers_holdout4.jsonl
               bench/data/transformers_finetune_holdout.jsonl bench/data/fake_pg_memory_holdout.jsonl
               bench/data/transformers_issue15_holdout.jsonl bench/data/transformers_issue15_holdout2.jsonl
               bench/data/transformers_issue15_fp8_dequant_holdout.jsonl bench/data/transformers_issue15_fp8_deep.jsonl
               bench/data/transformers_issue15_final.jsonl bench/data/transformers_issue15_mllama.jsonl)
table=$("$LLMEM" validate bench/data/transformers_memory.jsonl bench/data/transformers_finetune.jsonl \
          bench/data/transformers_issue15.jsonl bench/data/transformers_issue15_fp8_dequant.jsonl \
          bench/data/fake_pg_memory.jsonl bench/data/llamacpp_memory_h200.jsonl bench/data/llamacpp_offload_h100.jsonl bench/data/llamacpp_arch_h100.jsonl bench/data/llamacpp_arch2_h100.jsonl bench/data/llamacpp_iquant2_h100.jsonl bench/data/llamacpp_arch3_h200.jsonl bench/data/llamacpp_iquant4_h100.jsonl --markdown)
holdout=$("$LLMEM" validate "${holdout_files[@]}" --markdown)
python3 - "$table" "$holdout" "${holdout_files[@]}" <<'PY'
import glob, os, re, sys
table, holdout, files = sys.argv[1], sys.argv[2], sys.argv[3:]
# the blind results: the summary lines of the validate output saved with each held-out set
rows = ["| set | measured at | workload | cases | framework peak: median / max abs error | process (NVML): median / max |",
        "|---|---|---|---:|---:|---:|"]
line_re = re.compile(r"^(inference|training|sharded)\s+(\d+) cases\s+framework peak \|err\| median ([\d.]+) %, max ([\d.]+) %"
                     r".*process median ([\d.]+) %, max ([\d.]+) %")
# the validate output's newer form: "training 20 cases |err| median / max: framework peak 0.1 / 2.9 %, reserved
# 0.3 / 3.2 %," then on the next line "process 0.3 / 3.1 %"
new_re = re.compile(r"^(inference|training|sharded)\s+(\d+) cases\s+\|err\| median / max: framework peak ([\d.]+) / ([\d.]+) %"
                    r".*process ([\d.]+) / ([\d.]+) %")
for n, f in enumerate(files, 1):
    saved = sorted(glob.glob(f[:-len(".jsonl")] + "_validate_*.txt"))
    if len(saved) != 1:
        sys.exit(f"{f}: expected one saved validate output, found {len(saved)}")
    commit = os.path.basename(saved[0]).rsplit("_", 1)[1][:-len(".txt")]
    lines = [l.strip() for l in open(saved[0])]
    for i, line in enumerate(lines):
        joined = line + " " + (lines[i + 1] if i + 1 < len(lines) else "")
        m = line_re.match(line) or new_re.match(joined)
        if m:
            w, c, fm, fx, pm, px = m.groups()
            rows.append(f"| {n} (`{os.path.basename(f)}`) | {commit} | {w} | {c} | {fm} % / {fx} % | {pm} % / {px} % |")
blind = "\n".join(rows)
text = open("README.md").read()
for marker, t in (("accuracy-table", table.strip()), ("accuracy-holdout", holdout.strip()),
                  ("accuracy-holdout-blind", blind)):
    text, k = re.subn(r"(<!-- %s:begin -->\n).*?(<!-- %s:end -->)" % (marker, marker),
                      lambda m: m.group(1) + t + "\n" + m.group(2), text, flags=re.S)
    if k != 1:
        sys.exit(f"README.md: marker {marker} not found once")
open("README.md", "w").write(text)
PY
echo "README.md accuracy tables updated"
