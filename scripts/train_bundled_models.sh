#!/usr/bin/env bash
# Trains the models bundled in srtk/bundled/ with srtk's own CLI; scripts/bundle_models.py then packs and measures
# them. Every command below is the one that made the shipped weights.
#
#   bash scripts/train_bundled_models.sh [STEP] [RUNS]
#
# STEP: `all` (default: two lanes in parallel, in the order below), a lane (`lane_a`, `lane_b`) or one model's
# step (`psnr_rrdb`, `nse_contrastive`, `spsr_p`, ...). RUNS (default runs/bundled) gets one run folder per model;
# a finished run is kept and an interrupted one resumed, so running it again continues where it stopped.
#
# Scale (what a 2-core CPU trains in about two hours; the papers train 64-feature, 23-block RRDBs on DIV2K for
# 4e5-1e6 iterations): 32-64 features and 6-16 blocks, so each file is a few MB and a 256x256 input upscales in
# seconds on a CPU; 148 photographs (BSD68 + SunHays80 of shared/datasets/train); PSNR models 600-2500 iterations,
# the GAN and structure stages 150-200 iterations from the PSNR model (--init), batch 8 instead of 15-16.
# Perceptual losses are off (losses.perceptual=0): ImageNet VGG19 / AlexNet weights are not on the machines that
# trained these models. The structure losses of spsr-p/j use NSEs pre-trained here on the same photographs.
# A short run affords a larger step than the papers' schedules: PSNR-oriented runs use cosine decay from 4e-4.
set -euo pipefail
STEP=${1:-all}
RUNS=${2:-runs/bundled}
SHARED=${SRTK_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
DATA=(--data "$SHARED/datasets/train/BSD68" --data "$SHARED/datasets/train/SunHays80")
export OMP_NUM_THREADS=${THREADS:-1}  # one thread per run, two runs at a time on a 2-core machine
SRTK=${SRTK:-srtk}
COMMON=(--device cpu --set data.num_workers=0 --set checkpoint.every=250 --set checkpoint.log_every=25)
SHORT=(--set optim.schedule=cosine --set optim.cosine_period=null --set optim.min_learning_rate=1e-6)
RRDB='model.backbone_options={"num_features": 32, "num_blocks": 6, "growth_channels": 16}'
CRITIC='{"num_features": 32}'  # half the papers' critic width
GAN=(--batch-size 8 --patch-size 32 --set losses.perceptual=0
     --set "model.discriminator_options=$CRITIC" --set "model.gradient_discriminator_options=$CRITIC")

train() {  # NAME ARGS...: `srtk train` into RUNS/NAME; a finished run is kept, an interrupted one continued
    local name=$1; shift
    [[ -f "$RUNS/$name/final.safetensors" ]] && { echo "$name: finished, kept"; return; }
    local resume=(); [[ -f "$RUNS/$name/last.state.pt" ]] && resume=(--resume)
    "$SRTK" train "${DATA[@]}" -o "$RUNS/$name" "${COMMON[@]}" "$@" "${resume[@]}"
}

pretrain() {  # NAME ARGS...: `srtk pretrain-nse` into RUNS/NAME, same rules
    local name=$1; shift
    [[ -f "$RUNS/$name/final.safetensors" ]] && { echo "$name: finished, kept"; return; }
    local resume=(); [[ -f "$RUNS/$name/last.state.pt" ]] && resume=(--resume)
    "$SRTK" pretrain-nse "${DATA[@]}" -o "$RUNS/$name" --device cpu --set data.num_workers=0 "$@" "${resume[@]}"
}

need() {  # wait for another lane's model
    until [[ -f "$RUNS/$1/final.safetensors" ]]; do sleep 30; done
}

psnr_rrdb() {
    train psnr-rrdb --method psnr --backbone rrdbnet --set "$RRDB" \
        --batch-size 16 --patch-size 32 --iterations 2000 "${SHORT[@]}" --set optim.learning_rate=4e-4
}
psnr_edsr() {
    train psnr-edsr --method psnr --backbone edsr-baseline \
        --batch-size 16 --patch-size 32 --iterations 2500 "${SHORT[@]}" --set optim.learning_rate=4e-4
}
nse_contrastive() {  # paper 000 sec. 4.2: 48 x 420 px patches; here 8 x 128 px
    pretrain nse-contrastive --task contrastive --iterations 300 --batch-size 8 --patch-size 128
}
nse_jigsaw() {
    pretrain nse-jigsaw --task jigsaw --iterations 300 --batch-size 8 --patch-size 132
}
spsr_p() {
    need psnr-rrdb
    train spsr-p --method spsr-p --set "$RRDB" --init "$RUNS/psnr-rrdb/final.safetensors" \
        --nse "$RUNS/nse-contrastive/final.safetensors" --iterations 200 "${GAN[@]}"
}
spsr_j() {
    need psnr-rrdb
    train spsr-j --method spsr-j --set "$RRDB" --init "$RUNS/psnr-rrdb/final.safetensors" \
        --nse "$RUNS/nse-jigsaw/final.safetensors" --iterations 200 "${GAN[@]}"
}
esrgan() {
    train esrgan --method esrgan --set "$RRDB" --init "$RUNS/psnr-rrdb/final.safetensors" --iterations 200 "${GAN[@]}"
}
spsr_g() {
    train spsr-g --method spsr-g --set "$RRDB" --init "$RUNS/psnr-rrdb/final.safetensors" --iterations 200 "${GAN[@]}"
}
ugsr() {  # paper 002 pre-trains its own generator with L1 (its packed input conv differs from RRDBNet's)
    local size='model.backbone_options={"num_features": 32, "num_blocks": 6, "growth_channels": 16}'
    train ugsr-psnr --method psnr --backbone ugsr --set "$size" \
        --batch-size 16 --patch-size 32 --iterations 300 "${SHORT[@]}" --set optim.learning_rate=4e-4
    train ugsr --method ugsr --set "${size/backbone_options/generator_options}" \
        --init "$RUNS/ugsr-psnr/final.safetensors" --iterations 150 "${GAN[@]}"
}
pcl() {  # paper 004 trains PCL from scratch for 1e6 iterations; here it fine-tunes the EDSR-baseline PSNR model
    need psnr-edsr
    train pcl --method pcl --backbone edsr-baseline --init "$RUNS/psnr-edsr/final.safetensors" \
        --batch-size 8 --patch-size 32 --iterations 200 "${SHORT[@]}"
}
gpsr() {  # paper 003 Table 4's x4 GPSR is 8.18M parameters; n=8, M=2, R=2 here
    train gpsr --method gpsr --set 'model.generator_options={"num_features": 8, "num_modules": 2, "num_residual_blocks": 2}' \
        --batch-size 8 --patch-size 32 --iterations 600 "${SHORT[@]}" --set optim.learning_rate=4e-4
}

lane_a() { psnr_rrdb; nse_contrastive; spsr_p; esrgan; spsr_g; gpsr; }
lane_b() { psnr_edsr; nse_jigsaw; spsr_j; pcl; ugsr; }
all() { lane_a & lane_b & wait; }

"$STEP"
