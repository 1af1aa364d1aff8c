#!/usr/bin/env bash
# Regenerates crates/proxy/src/demo/testpattern.h264, the clip the built-in
# demo source (--demo) loops.
#
# The clip: 2 s at 25 fps (50 frames), 320x240, ffmpeg's moving testsrc2
# pattern (it has its own clock and frame number top left) with a large frame
# counter burned in bottom right when drawtext and a DejaVu font are available.
# H.264 Constrained Baseline in Annex B, one closed GOP per second: frames 0
# and 25 are IDR, each preceded by SPS and PPS; no B-frames, so no frame
# references a later one and the clip loops seamlessly; an access unit
# delimiter (NAL type 9) opens every access unit.
#
# Needs ffmpeg with libx264 (Debian: apt-get install ffmpeg).
set -euo pipefail
cd "$(dirname "$0")/../.."

out=crates/proxy/src/demo/testpattern.h264
font=/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf

filter="testsrc2=size=320x240:rate=25:duration=2"
filters=$(ffmpeg -hide_banner -filters 2>/dev/null || true)
if [[ -r "$font" && "$filters" == *" drawtext "* ]]; then
  filter+=",drawtext=fontfile=${font}:text='%{frame_num}':start_number=0"
  filter+=":x=w-tw-8:y=h-th-8:fontsize=32:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=4"
else
  echo "make_demo_clip: drawtext or $font not available, no burned-in counter" >&2
fi

mkdir -p "$(dirname "$out")"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "$filter" \
  -c:v libx264 -profile:v baseline -pix_fmt yuv420p -g 25 \
  -x264-params aud=1:keyint=25:min-keyint=25:scenecut=0:bframes=0:open-gop=0 \
  -bsf:v h264_mp4toannexb -f h264 "$out"

echo "wrote $out ($(stat -c %s "$out") bytes)"
