#!/bin/bash
# A finer image flow for LeDiFlow and its Gaussian baseline on a lent GPU (one device call of
# at most 600 s): 2x2 patches, depth 6 (DIT below), batch 256, same network, flags and budget for
# both, both processes side by side on the one GPU. Prepared and dry-run on the CPU in session 13
# (DEV=cpu BATCH=4 LIMIT1=100 SLEEP1=20 TP1=45 TEND=130 FORCE_COOL=1 OUT=/tmp/out bash ...) and
# again with the per-pixel head in session 20; no GPU has been lent since, so it has never run on one.
#
# Set-up on the development machine (the device machine has no network, no Rust, no DCSS data):
#   cargo build --release --features cuda --bin lediflow          # ~14 min cold on 2 cores
#   mkdir -p .gpu/tiles && echo /.gpu/ >> .git/info/exclude
#   gzip -9c target/release/lediflow > .gpu/lediflow.gz            # ~12 MB (64 MB carry limit)
#   cp /usr/share/crawl/dat/tiles/{main,player,floor,wall,feat}.png .gpu/tiles/
#   cp bench/sweep/s13/gpu.sh .gpu/run.sh
# Device call: command "bash .gpu/run.sh", carry [".gpu"], timeout_s 600. Back come
# $OUT/pack.* (cat pack.* | tar xzf -: the f32 model files, phase-1 f16 exports, logs, CSV losses).
#
# Phase 1: constant lr, each process in its own folder with a cubecl.toml that caches compiled
# kernels and autotune results in a file (the first CUDA call compiled for 200 s on 2026-11-26).
# At TP1 s, if the kernel cache was written, SIGTERM (-> checkpoint), export the phase-1 models,
# and resume each run with the steps the measured rate allows before TEND plus a linear decay
# over them (train --time-limit, decay added on --resume). Without a cache file phase 1 runs to
# its time limit and the checkpoint is exported instead.
set -u
T0=$(date +%s); now() { echo $(( $(date +%s) - T0 )); }
R=$PWD; B=/tmp/lediflow; gunzip -c $R/.gpu/lediflow.gz > $B && chmod +x $B; L=$OUT/log.txt
exec > >(tee -a $L) 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
$B --version || { echo "binary does not run"; exit 3; }
command -v nvidia-smi >/dev/null && nvidia-smi dmon -s u -d 5 > $OUT/dmon.txt 2>&1 &
# Session 20: the default network keeps the shipped files' time-modulated per-pixel head (sessions
# 14-16: the best CPU lever) on the finer 2x2-patch DiT, one block deeper than shipped; any dit
# change other than the head alone makes --init train the image flow from scratch on the file's
# prior. The cuda binary must be built from session 14 or later to know dit.pixel_head.
DIT=${DIT:-"--set dit.patch_size=2 --set dit.depth=6 --set dit.dim=128 --set dit.heads=4 \
  --set dit.pixel_head=32 --set dit.pixel_head_time=true"}
COMMON="--dcss --dcss-dir $R/.gpu/tiles --channels 4 --size 32 --batch ${BATCH:-256} --seed 21 --hflip \
  --checkpoint-every 250 --device ${DEV:-cuda} --set train.fm.lr=5e-4 $DIT"
declare -A ARGS=(
  [ledi]="--init $R/models/dcss-small-ledi.safetensors --steps-aux 0 --steps-latent 0"
  [gauss]="--preset small --prior gaussian"
)
for m in ledi gauss; do
  mkdir -p /tmp/w-$m && cat > /tmp/w-$m/cubecl.toml <<TOML
[compilation]
cache = { file = "/tmp/cc-$m" }
[autotune]
level = "minimal"
cache = { file = "/tmp/at-$m" }
TOML
done
train() { # model steps time-limit extra...
  local m=$1 s=$2 t=$3; shift 3
  (cd /tmp/w-$m && RAYON_NUM_THREADS=4 $B train $COMMON ${ARGS[$m]} --steps-fm $s --time-limit $t \
     --run-dir /tmp/run-$m --out /tmp/$m.f32.safetensors "$@" > /tmp/$m.log 2>&1; echo "$m exit $? at $(now)s")
}
train ledi 200000 ${LIMIT1:-520} & P1=$!; train gauss 200000 ${LIMIT1:-520} & P2=$!
sleep ${SLEEP1:-240}
while [ $(now) -lt ${TP1:-300} ]; do sleep 5; done
echo "t=$(now) phase 1 caches:"; ls -la /tmp/cc-* /tmp/at-* 2>&1 | head
tail -n 2 /tmp/ledi.log /tmp/gauss.log
COOL=${FORCE_COOL:-0}; [ -s /tmp/cc-ledi ] || ls /tmp/cc-ledi/* >/dev/null 2>&1 && COOL=1
if [ $COOL = 1 ]; then
  pkill -TERM -f "lediflow train" ; wait $P1 $P2
  for m in ledi gauss; do $B export --run-dir /tmp/run-$m --out /tmp/$m.p1.f16.safetensors --fp16; done
  Q=""
  for m in ledi gauss; do
    # last fm step, and the rate over the last 90 s of the log
    read S RATE < <(awk -F, '$1=="fm"{s[n]=$2;e[n]=$6;n++} END{last=e[n-1];i=0;while(e[i]<last-90)i++;
      printf "%d %f\n", s[n-1], (s[n-1]-s[i])/(e[n-1]-e[i]+1e-9)}' /tmp/run-$m/losses.csv)
    LEFT=$(( ${TEND:-560} - $(now) - 30 ))
    D=$(awk -v r=$RATE -v l=$LEFT 'BEGIN{d=int(r*l*0.9); if(d<100)d=100; print d}')
    echo "$m: phase 1 at step $S, $RATE steps/s, cool-down $D steps"
    train $m $((S + D)) $((LEFT + 20)) --resume --set train.fm.decay_steps=$D & Q="$Q $!"
  done
  wait $Q
else
  echo "no compile cache: phase 1 runs to its limit"; wait $P1 $P2
fi
echo "t=$(now) done training"
for m in ledi gauss; do
  [ -f /tmp/$m.f32.safetensors ] || $B export --run-dir /tmp/run-$m --out /tmp/$m.f32.safetensors
  cp /tmp/run-$m/losses.csv /tmp/$m.losses.csv; cp /tmp/run-$m/ckpt/state.json /tmp/$m.state.json
done
cd /tmp && tar czf - *.f32.safetensors *.p1.f16.safetensors *.log *.losses.csv *.state.json 2>/dev/null | split -b 15M - $OUT/pack.
du -sh /tmp/cc-* /tmp/at-* 2>/dev/null; ls -la $OUT; echo "t=$(now) end"
