#!/bin/sh
# Regenerates test/fixtures/dicom/ with independent tools (not this package):
#   apt-get install dcmtk libgdcm-tools python3-pydicom python3-numpy python3-opencv
# pydicom writes the uncompressed explicit VR little endian sources with known stored values; dcmtk and GDCM
# re-encode them in every other transfer syntax; numpy + OpenCV compute the expected 8-bit images.
set -eu
cd "$(dirname "$0")/.."
OUT=test/fixtures/dicom
PY=/usr/bin/python3
rm -rf "$OUT"
mkdir -p "$OUT"
$PY scripts/make-dicom-fixtures.py sources "$OUT"
cd "$OUT"

# uncompressed: implicit VR LE, explicit VR BE, deflated explicit VR LE
for s in u16_mono2_b12 s16_mono2 u8_mono2 voilut_u16 rgb_u8; do
  dcmconv +ti "$s.dcm" "$s.implicit.dcm"
  dcmconv +tb "$s.dcm" "$s.big.dcm"
done
for s in u16_mono2_b12 u16_mono1_b16 multiframe_u16; do
  dcmconv +td "$s.dcm" "$s.deflated.dcm"
done
# RLE lossless
for s in u16_mono2_b12 u16_mono1_b16 s16_mono2 s12_mono2 u8_mono2 rgb_u8 multiframe_u16; do
  dcmcrle "$s.dcm" "$s.rle.dcm"
done
# JPEG lossless (process 14, first-order prediction SV1; and selection value 6); rgb_u8: colour lossless
for s in u16_mono2_b12 u16_mono1_b16 s16_mono2 u8_mono2 multiframe_u16 rgb_u8; do
  dcmcjpeg +e1 "$s.dcm" "$s.jpeg-lossless-sv1.dcm"
done
dcmcjpeg +el +sv 6 u16_mono2_b12.dcm u16_mono2_b12.jpeg-lossless-sv6.dcm
# JPEG baseline and extended (8-bit lossy); img2dcm wraps an existing JPEG file
dcmcjpeg +eb u8_mono2.dcm u8_mono2.jpeg-baseline.dcm
dcmcjpeg +ee u8_mono2.dcm u8_mono2.jpeg-extended.dcm
dcmcjpeg +eb rgb_u8.dcm rgb_u8.jpeg-baseline.dcm
img2dcm -i JPEG u8_mono2.src.jpg u8_mono2.img2dcm.dcm
rm -f u8_mono2.src.jpg
# JPEG extended 12-bit lossy (process 4) of a 12-bit source; dcmdjpeg's decoding of it is the reference
# (dcmcjpeg's default +sp shifts the stored values so that the minimum is 0)
$PY ../../../scripts/make-dicom-fixtures.py lossy12-source .
dcmcjpeg +ee u12_cxr.src.tmp u12_cxr.jpeg-extended.dcm
dcmdjpeg u12_cxr.jpeg-extended.dcm u12_cxr.dcmdjpeg.tmp
$PY ../../../scripts/make-dicom-fixtures.py lossy12-reference .
rm -f ./*.tmp
# JPEG-LS lossless
for s in u16_mono2_b12 u16_mono1_b16 s16_mono2 u8_mono2 multiframe_u16; do
  dcmcjpls +el "$s.dcm" "$s.jpeg-ls.dcm"
done
# JPEG 2000 lossless (GDCM + OpenJPEG)
for s in u16_mono2_b12 u16_mono1_b16 s16_mono2 u8_mono2; do
  gdcmconv --j2k "$s.dcm" "$s.j2k.dcm"
done
# dcmodify: a lateral view marked by the tool on a frontal file; MONOCHROME1 flag flipped on a copy
cp u16_mono2_b12.dcm u16_mono2_b12.lateral-dcmodify.dcm
dcmodify -nb -m "(0018,5101)=LATERAL" u16_mono2_b12.lateral-dcmodify.dcm
rm -f ./*.bak

$PY ../../../scripts/make-dicom-fixtures.py expected .
du -sh .
