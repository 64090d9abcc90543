#!/usr/bin/python3
# DICOM fixtures for test/dicom.test.ts, written by tools independent of this package:
#   pydicom 2.3 (Debian python3-pydicom) writes the uncompressed sources with known stored values;
#   dcmtk (dcmconv, dcmcrle, dcmcjpeg, dcmcjpls, img2dcm, dcmodify) and GDCM (gdcmconv, JPEG 2000) re-encode
#   them in the other transfer syntaxes (run by scripts/make-dicom-fixtures.sh);
#   numpy + OpenCV (python3-opencv, cv2.equalizeHist) compute the expected 8-bit MIMIC-CXR-JPG images with
#   the dataset authors' own function (MIT-LCP/mimic-cxr issue 16):
#       x = stored - stored.min(); x = x / x.max(); u8 = (x * 255).astype(np.uint8)
#       if MONOCHROME1: u8 = cv2.bitwise_not(u8); out = cv2.equalizeHist(u8)
#   and the expected 8-bit window/level images (DICOM PS3.3 C.11.2.1.2.1 linear function, round half up).
# 12-bit lossy JPEG (process 4): a 320x256 12-bit source (not kept) is encoded by dcmcjpeg +ee and decoded
#   again by dcmdjpeg; dcmdjpeg's stored values (NAME.dcmdjpeg.i32.gz) and their MIMIC image are the reference.
# Usage: /usr/bin/python3 scripts/make-dicom-fixtures.py sources OUTDIR          (step 1: pydicom sources)
#        /usr/bin/python3 scripts/make-dicom-fixtures.py lossy12-source OUTDIR   (the 12-bit source, *.tmp)
#        /usr/bin/python3 scripts/make-dicom-fixtures.py lossy12-reference OUTDIR (dcmdjpeg's values, from *.tmp)
#        /usr/bin/python3 scripts/make-dicom-fixtures.py expected OUTDIR         (last: expected images + manifest)
import gzip
import json
import os
import sys

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROWS, COLS = 90, 72


def synthetic(seed, lo, hi):
    """A smooth radiograph-like field with structure and noise, values in [lo, hi] (both reached)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:ROWS, 0:COLS].astype(np.float64)
    f = 0.35 + 0.25 * np.sin(x / 9.0) * np.cos(y / 13.0)
    f += 0.3 * np.exp(-(((x - 20) / 10) ** 2 + ((y - 40) / 22) ** 2))
    f += 0.3 * np.exp(-(((x - 52) / 10) ** 2 + ((y - 40) / 22) ** 2))
    f += 0.05 * rng.standard_normal(f.shape)
    f = (f - f.min()) / (f.max() - f.min())
    v = np.round(lo + f * (hi - lo)).astype(np.int64)
    return v


def base_ds(path, rows=ROWS, cols=COLS):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.1'  # Digital X-Ray Image Storage - Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid()
    ds = FileDataset(path, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = 'DX'
    ds.PatientName = 'Synthetic^Fixture'
    ds.PatientID = 'FIXTURE'
    ds.ViewPosition = 'PA'
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1
    return ds


def write(ds, arr, bits_allocated, bits_stored, signed, photometric, path, frames=1):
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PhotometricInterpretation = photometric
    if frames > 1:
        ds.NumberOfFrames = frames
    dtype = {8: '<u1', 16: '<u2'}[bits_allocated]
    raw = arr.astype(np.int64) & ((1 << bits_allocated) - 1)
    ds.PixelData = raw.astype(dtype).tobytes()
    ds.save_as(path, write_like_original=False)


def sources(out):
    os.makedirs(out, exist_ok=True)
    stored = {}

    # 12 bits stored in 16, MONOCHROME2, window + rescale for the window mode
    a = synthetic(1, 37, 3901)
    ds = base_ds('u16_mono2_b12')
    ds.WindowCenter = 1900
    ds.WindowWidth = 2400
    ds.RescaleSlope = 2
    ds.RescaleIntercept = -1000
    write(ds, a, 16, 12, False, 'MONOCHROME2', f'{out}/u16_mono2_b12.dcm')
    stored['u16_mono2_b12'] = a

    # full 16-bit MONOCHROME1 (the kind of CR that MIMIC-CXR holds)
    a = synthetic(2, 512, 64000)
    ds = base_ds('u16_mono1_b16')
    write(ds, a, 16, 16, False, 'MONOCHROME1', f'{out}/u16_mono1_b16.dcm')
    stored['u16_mono1_b16'] = a

    # signed 16-bit
    a = synthetic(3, -2000, 3000)
    ds = base_ds('s16_mono2')
    ds.WindowCenter = '500'
    ds.WindowWidth = '3000'
    write(ds, a, 16, 16, True, 'MONOCHROME2', f'{out}/s16_mono2.dcm')
    stored['s16_mono2'] = a

    # signed, 12 bits stored: the stored word holds only the low 12 bits (two's complement in 12 bits),
    # so the reader must sign-extend from bit 11
    a = synthetic(4, -2048, 2047)
    ds = base_ds('s12_mono2')
    write(ds, a & 0xFFF, 16, 12, True, 'MONOCHROME2', f'{out}/s12_mono2.dcm')
    stored['s12_mono2'] = a

    # unsigned 12 bits with garbage in the 4 unused high bits (must be masked off)
    a = synthetic(5, 0, 4095)
    rng = np.random.default_rng(55)
    junk = rng.integers(0, 16, a.shape) << 12
    ds = base_ds('u12_junkbits')
    write(ds, a | junk, 16, 12, False, 'MONOCHROME2', f'{out}/u12_junkbits.dcm')
    stored['u12_junkbits'] = a

    # 8-bit MONOCHROME2
    a = synthetic(6, 3, 250)
    ds = base_ds('u8_mono2')
    write(ds, a, 8, 8, False, 'MONOCHROME2', f'{out}/u8_mono2.dcm')
    stored['u8_mono2'] = a

    # multi-frame: 3 frames, frame 0 is used
    frames = [synthetic(7 + i, 100 * i, 3000 + 300 * i) for i in range(3)]
    ds = base_ds('multiframe_u16')
    write(ds, np.stack(frames), 16, 12, False, 'MONOCHROME2', f'{out}/multiframe_u16.dcm', frames=3)
    stored['multiframe_u16'] = frames[0]

    # lateral view
    a = synthetic(11, 100, 4000)
    ds = base_ds('lateral_u16')
    ds.ViewPosition = 'LL'
    write(ds, a, 16, 12, False, 'MONOCHROME2', f'{out}/lateral_u16.dcm')
    stored['lateral_u16'] = a

    # VOI LUT sequence (takes precedence over window centre/width in window mode)
    a = synthetic(12, 0, 1023)
    ds = base_ds('voilut_u16')
    ds.WindowCenter = 512
    ds.WindowWidth = 1024
    item = Dataset()
    # 1024 entries, first mapped value 0, 16 bits per entry: a gamma curve to 0..4095
    lut = np.round(4095 * (np.arange(1024) / 1023.0) ** 0.5).astype(np.uint16)
    item.LUTDescriptor = [1024, 0, 16]
    item.LUTExplanation = 'GAMMA'
    item.add_new(0x00283006, 'OW', lut.astype('<u2').tobytes())
    ds.VOILUTSequence = Sequence([item])
    write(ds, a, 16, 10, False, 'MONOCHROME2', f'{out}/voilut_u16.dcm')
    stored['voilut_u16'] = a

    # RGB 8-bit (colour secondary capture)
    rgb = np.stack([synthetic(13, 0, 255), synthetic(14, 0, 255), synthetic(15, 0, 255)], axis=-1)
    ds = base_ds('rgb_u8')
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    write(ds, rgb, 8, 8, False, 'RGB', f'{out}/rgb_u8.dcm')
    stored['rgb_u8'] = rgb

    for name, arr in stored.items():
        with gzip.open(f'{out}/{name}.stored.i32.gz', 'wb') as f:
            f.write(arr.astype('<i4').tobytes())
    # the 8-bit source as a JPEG for img2dcm (an encapsulated JPEG made outside dcmtk's encoder)
    cv2.imwrite(f'{out}/u8_mono2.src.jpg', stored['u8_mono2'].astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])


def lossy12_source(out):
    """A 320x256 chest-like 12-bit image (lungs, rib-like bands, mild noise) for dcmcjpeg +ee; not kept."""
    rows, cols = 320, 256
    rng = np.random.default_rng(16)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    f = 0.35 + 0.2 * np.sin(x / 23.0) * np.cos(y / 31.0)
    f += 0.35 * np.exp(-(((x - 75) / 38) ** 2 + ((y - 165) / 95) ** 2))
    f += 0.35 * np.exp(-(((x - 181) / 38) ** 2 + ((y - 165) / 95) ** 2))
    f += 0.08 * np.cos(y / 7.0) * np.exp(-(((x - 128) / 90) ** 2))
    f += 0.004 * rng.standard_normal(f.shape)
    f = (f - f.min()) / (f.max() - f.min())
    a = np.round(30 + f * (4070 - 30)).astype(np.int64)
    ds = base_ds('u12_cxr', rows, cols)
    write(ds, a, 16, 12, False, 'MONOCHROME2', f'{out}/u12_cxr.src.tmp')


def lossy12_reference(out):
    """dcmdjpeg's decoding of u12_cxr.jpeg-extended.dcm (u12_cxr.dcmdjpeg.tmp) as stored values"""
    ds = pydicom.dcmread(f'{out}/u12_cxr.dcmdjpeg.tmp')
    assert str(ds.file_meta.TransferSyntaxUID) == ExplicitVRLittleEndian and int(ds.BitsStored) == 12
    a = ds.pixel_array.astype(np.int64)
    with gzip.open(f'{out}/u12_cxr.jpeg-extended.dcmdjpeg.i32.gz', 'wb') as f:
        f.write(a.astype('<i4').tobytes())


def mimic(stored, photometric):
    """The MIMIC-CXR-JPG function of the dataset authors, verbatim in its arithmetic."""
    raw_image = stored.copy()
    raw_image = raw_image - raw_image.min()
    normalized_image = raw_image / raw_image.max()
    rescaled_image = (normalized_image * 255).astype(np.uint8)
    if photometric == 'MONOCHROME1':
        rescaled_image = cv2.bitwise_not(rescaled_image)
    return cv2.equalizeHist(rescaled_image)


def window(stored, slope, intercept, c, w, photometric):
    x = stored.astype(np.float64) * slope + intercept
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(x > c - 0.5 + (w - 1) / 2, 255.0, y))
    u8 = np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)
    return 255 - u8 if photometric == 'MONOCHROME1' else u8


def voi_lut(stored, lut, first, bits, photometric):
    idx = np.clip(stored - first, 0, len(lut) - 1)
    v = lut[idx].astype(np.float64)
    u8 = np.floor(v / ((1 << bits) - 1) * 255 + 0.5).astype(np.uint8)
    return 255 - u8 if photometric == 'MONOCHROME1' else u8


def expected(out):
    manifest = {'sources': {}, 'files': []}
    for fn in sorted(os.listdir(out)):
        if not fn.endswith('.stored.i32.gz'):
            continue
        name = fn[: -len('.stored.i32.gz')]
        ds = pydicom.dcmread(f'{out}/{name}.dcm')
        with gzip.open(f'{out}/{fn}', 'rb') as f:
            a = np.frombuffer(f.read(), '<i4').astype(np.int64)
        spp = int(ds.SamplesPerPixel)
        a = a.reshape((ROWS, COLS, spp) if spp > 1 else (ROWS, COLS))
        src = {'photometric': str(ds.PhotometricInterpretation), 'samples': spp, 'rows': ROWS, 'cols': COLS,
               'min': int(a.min()), 'max': int(a.max())}
        if spp == 1:
            m = mimic(a, src['photometric'])
            cv2.imwrite(f'{out}/{name}.mimic.png', m)
            src['mimic'] = f'{name}.mimic.png'
            if 'VOILUTSequence' in ds:
                it = ds.VOILUTSequence[0]
                n, first, bits = [int(v) for v in it.LUTDescriptor]
                lut = np.frombuffer(it[0x00283006].value, '<u2').astype(np.int64)
                cv2.imwrite(f'{out}/{name}.window.png', voi_lut(a, lut, first, bits, src['photometric']))
                src['window'] = f'{name}.window.png'
            elif 'WindowCenter' in ds:
                slope = float(ds.get('RescaleSlope', 1))
                intercept = float(ds.get('RescaleIntercept', 0))
                c = float(ds.WindowCenter)
                w = float(ds.WindowWidth)
                cv2.imwrite(f'{out}/{name}.window.png', window(a, slope, intercept, c, w, src['photometric']))
                src['window'] = f'{name}.window.png'
        manifest['sources'][name] = src
    # files whose reference is another decoder's output (dcmdjpeg), not a kept source
    manifest['decoded'] = []
    for fn in sorted(os.listdir(out)):
        if not fn.endswith('.dcmdjpeg.i32.gz'):
            continue
        stem = fn[: -len('.dcmdjpeg.i32.gz')]
        ds = pydicom.dcmread(f'{out}/{stem}.dcm')
        rows, cols = int(ds.Rows), int(ds.Columns)
        with gzip.open(f'{out}/{fn}', 'rb') as f:
            a = np.frombuffer(f.read(), '<i4').astype(np.int64).reshape((rows, cols))
        photometric = str(ds.PhotometricInterpretation)
        cv2.imwrite(f'{out}/{stem}.mimic.png', mimic(a, photometric))
        manifest['decoded'].append({'file': f'{stem}.dcm', 'transferSyntax': str(ds.file_meta.TransferSyntaxUID),
                                    'decoder': 'dcmdjpeg', 'stored': fn, 'mimic': f'{stem}.mimic.png',
                                    'photometric': photometric, 'rows': rows, 'cols': cols,
                                    'bitsStored': int(ds.BitsStored), 'min': int(a.min()), 'max': int(a.max())})
    for fn in sorted(os.listdir(out)):
        if not fn.endswith('.dcm'):
            continue
        ds = pydicom.dcmread(f'{out}/{fn}', stop_before_pixels=True)
        ts = str(ds.file_meta.TransferSyntaxUID)
        stem = fn[:-4]
        source = stem.split('.')[0]
        if source not in manifest['sources']:
            continue
        manifest['files'].append({'file': fn, 'source': source, 'transferSyntax': ts,
                                  'lossless': not ('.jpeg-baseline' in fn or '.jpeg-extended' in fn or '.img2dcm' in fn or '.lossy' in fn)})
    # OpenCV equalizeHist on crafted 8-bit inputs (ties at .5, single value, two values, a large image)
    eq = []
    rng = np.random.default_rng(99)
    cases = [
        rng.integers(0, 256, (37, 41)),
        rng.integers(100, 103, (5, 7)),
        np.full((4, 4), 77),
        np.array([[0, 255]] * 3),
        np.minimum(rng.geometric(0.02, (60, 61)), 255),
        rng.integers(10, 30, (2, 2)),
        np.arange(256).reshape(16, 16),
    ]
    for i, c in enumerate(cases):
        c = c.astype(np.uint8)
        eq.append({'rows': int(c.shape[0]), 'cols': int(c.shape[1]), 'input': c.flatten().tolist(),
                   'output': cv2.equalizeHist(c).flatten().tolist()})
    with open(f'{out}/equalize-hist.json', 'w') as f:
        json.dump({'opencv': cv2.__version__, 'cases': eq}, f, separators=(',', ':'))
    manifest['tools'] = {'pydicom': pydicom.__version__, 'numpy': np.__version__, 'opencv': cv2.__version__}
    with open(f'{out}/manifest.json', 'w') as f:
        json.dump(manifest, f, indent=1)


if __name__ == '__main__':
    {'sources': sources, 'lossy12-source': lossy12_source, 'lossy12-reference': lossy12_reference,
     'expected': expected}[sys.argv[1]](sys.argv[2])
