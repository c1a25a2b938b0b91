#!/bin/bash
# Quiet-machine benchmarks for #18, one after another; JSON per bench in $OUT, loads in $OUT/log.
OUT=${OUT:-/tmp/qb}; mkdir -p $OUT
P=/work/main/.venv/bin/python
cd /work/main
run(){ name=$1; shift; echo "$(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg) start $name" >> $OUT/log
  "$@" > $OUT/$name.json 2> $OUT/$name.err; rc=$?
  echo "$(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg) end $name rc=$rc" >> $OUT/log; }
for b in ${BENCHES:-train_overhead contention contention_app gui startup projection}; do
  case $b in
    train_overhead) run $b $P bench/train_overhead.py --cost-presets default;;
    contention) run $b $P bench/contention.py;;
    contention_app) run $b env QT_QPA_PLATFORM=offscreen $P bench/contention.py --app;;
    gui) run $b env QT_QPA_PLATFORM=offscreen $P bench/gui_responsiveness.py --rounds 3;;
    startup) run $b $P bench/startup.py --display :94 --rounds 3;;
    projection) run $b $P bench/projection.py --sizes 2000 5000 20000 --no-first-frame;;
    sweep) run $b $P bench/sweep.py --runs 6 --steps 400;;
  esac
done
