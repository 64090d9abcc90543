#!/usr/bin/python3
# Writes the image-preprocessing fixtures under test/fixtures/images/ with the real PIL (and torchvision, when
# installed), so test/image.test.ts can check lib/image/ against the official LLaVA-Rad input pipeline:
#
#   image = Image.open(f).convert('RGB')                      # LLaVA-Rad's loader
#   open_clip eval transform: Resize(518, BICUBIC), CenterCrop(518), _convert_to_rgb, ToTensor(),
#                             Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
#
# Run with Debian's Python (python3-pil, python3-numpy, python3-torch, python3-torchvision):
#   /usr/bin/python3 scripts/make-image-fixtures.py
# CI does not run it; its outputs are committed. Deterministic (fixed seeds), but the bytes of lossy
# encodings depend on the installed libjpeg/libwebp, so regenerate all outputs together.
#
# Outputs:
#   <name>.<ext>             the source image
#   expected/<name>.webp     PIL's uint8 518x518 crop, lossless WebP (mode L when R == G == B, else RGB);
#                            identical crops share one file
#   resample/...             small PIL resize cases (the resampler alone, up/down/same size per axis)
#   manifest.json            what each file is, PIL's decoded size and a SHA-256 of PIL's decoded RGB bytes
#   normalize-lut.bin        torch's float32 ToTensor+Normalize value for every uint8 value, per channel (3x256)
#   tensors.json             per-channel float64 sums and sampled values of torch's full normalized tensor

import hashlib
import io
import json
import os
import sys

import numpy as np
from PIL import Image, ImageOps, features

SIZE = 518
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'images')
OUT = os.path.normpath(ROOT)
os.makedirs(os.path.join(OUT, 'expected'), exist_ok=True)
os.makedirs(os.path.join(OUT, 'resample'), exist_ok=True)

try:
    import torch
    from torchvision import transforms as T
    from torchvision.transforms import InterpolationMode
    HAVE_TV = True
except Exception as e:  # torchvision missing: the crop comes from the manual PIL pipeline only
    print('torchvision not available:', e, file=sys.stderr)
    HAVE_TV = False


def radiograph(w, h, seed, noise=0.4):
    """A smooth synthetic frontal chest radiograph (float64, ~0..255) plus Gaussian noise."""
    rs = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u = (x + 0.5) / w
    v = (y + 0.5) / h
    img = 25 + 20 * v
    body = np.exp(-((u - 0.5) / 0.42) ** 8 - ((v - 0.58) / 0.52) ** 8)
    img = img + 150 * body
    for cx in (0.32, 0.68):
        lung = np.exp(-((((u - cx) / 0.15) ** 2 + ((v - 0.5) / 0.3) ** 2) ** 2))
        img = img - 85 * lung
    img = img + 14 * np.sin(2 * np.pi * (v * 9 + 0.2 * np.sin(u * 7))) * body
    img = img + 45 * np.exp(-((u - 0.5) / 0.035) ** 2) * body
    heart = np.exp(-((((u - 0.56) / 0.13) ** 2 + ((v - 0.66) / 0.12) ** 2) ** 2))
    img = img + 40 * heart
    img = img + rs.normal(0, noise, img.shape)
    # a burned-in marker: hard edges make ringing (negative lobes, clipping at 0/255) show
    y0, y1, x0, x1 = int(h * 0.05), int(h * 0.11), int(w * 0.06), int(w * 0.13)
    img[y0:y1, x0:x1] = 255
    img[y0 + max(1, (y1 - y0) // 3):y1 - max(1, (y1 - y0) // 3), x0 + 1:x1 - 1] = 0
    return img


def u8(a):
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def grey(w, h, seed, noise=0.4):
    return Image.fromarray(u8(radiograph(w, h, seed, noise)), 'L')


def rgb(w, h, seed, noise=0.0):
    g = radiograph(w, h, seed, noise)
    rs = np.random.RandomState(seed + 1000)
    r = u8(g * 0.97 + 6)
    gg = u8(g * 0.93 + 3 + rs.normal(0, 0.3 * noise, g.shape))
    b = u8(g * 0.88 + 14 + rs.normal(0, 0.3 * noise, g.shape))
    return Image.fromarray(np.stack([r, gg, b], axis=-1), 'RGB')


def official_crop(im):
    """The resize + centre crop of the official pipeline, on an RGB PIL image (the rules torchvision uses)."""
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = SIZE, int(SIZE * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    r = im.resize((new_w, new_h), Image.BICUBIC) if (new_w, new_h) != (w, h) else im
    top = int(round((new_h - SIZE) / 2.0))
    left = int(round((new_w - SIZE) / 2.0))
    return r.crop((left, top, left + SIZE, top + SIZE))


def tv_crop(im):
    t = T.Compose([T.Resize(SIZE, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(SIZE)])
    return t(im)


def tv_tensor(im):
    t = T.Compose([
        T.Resize(SIZE, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(SIZE),
        lambda x: x.convert('RGB'), T.ToTensor(), T.Normalize(mean=MEAN, std=STD),
    ])
    return t(im)


manifest = {'pillow': Image.__version__, 'libjpeg': features.version('jpg'), 'libwebp': features.version('webp'),
            'torchvision': None, 'images': [], 'resample': []}
if HAVE_TV:
    import torchvision
    manifest['torchvision'] = torchvision.__version__
    manifest['torch'] = torch.__version__


SAVED = {}
LOSSLESS = {'format': 'WEBP', 'lossless': True, 'quality': 100, 'method': 6}  # exact, ~30% smaller than PNG


def save_expected(name, crop):
    """Writes the crop once per distinct content (identical crops share one file)."""
    a = np.asarray(crop)
    assert crop.mode == 'RGB' and crop.size == (SIZE, SIZE)
    digest = hashlib.sha256(a.tobytes()).hexdigest()
    if digest in SAVED:
        return SAVED[digest]
    SAVED[digest] = 'expected/' + name + '.webp'
    if (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all():
        Image.fromarray(a[..., 0].copy(), 'L').save(os.path.join(OUT, SAVED[digest]), **LOSSLESS)
    else:
        crop.save(os.path.join(OUT, SAVED[digest]), **LOSSLESS)
    return SAVED[digest]


def add(name, data, ext, kind, options=None, expect=None, note=None, pil_loader=None, crop=True):
    """data: encoded bytes. expect: {'label': rgb PIL image before resize} (default: PIL's open+convert)."""
    fname = name + '.' + ext
    with open(os.path.join(OUT, fname), 'wb') as f:
        f.write(data)
    im = Image.open(io.BytesIO(data))
    pil_mode = im.mode
    loaded = pil_loader(im) if pil_loader else im.convert('RGB')
    entry = {'name': name, 'file': fname, 'kind': kind, 'pilMode': pil_mode, 'bytes': len(data),
             'width': loaded.size[0], 'height': loaded.size[1],
             'decodedSha256': hashlib.sha256(np.asarray(loaded).tobytes()).hexdigest(), 'options': options or {},
             'expected': None, 'variants': []}
    if note:
        entry['note'] = note
    if crop:  # else only the decoded pixels are checked (decodedSha256)
        c = official_crop(loaded)
        if HAVE_TV:
            tvc = tv_crop(loaded)
            assert np.array_equal(np.asarray(tvc), np.asarray(c)), name + ': torchvision crop != manual PIL crop'
        entry['expected'] = save_expected(name, c)
    for label, (img, opts) in (expect or {}).items():
        c = official_crop(img)
        entry['variants'].append({'label': label, 'options': opts, 'width': img.size[0], 'height': img.size[1],
                                  'decodedSha256': hashlib.sha256(np.asarray(img).tobytes()).hexdigest(),
                                  'expected': save_expected(name + '.' + label, c)})
    manifest['images'].append(entry)
    print(f'{fname:32s} {pil_mode:5s} {len(data):8d} B  -> {loaded.size}')
    return entry


def enc(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


# --- lossless sources: the decoders agree, so these test the resampler end to end ---
add('rgb_600x700', enc(rgb(600, 700, 1, noise=0.4), 'PNG', optimize=True), 'png', 'RGB PNG, downscale, portrait')
add('grey_700x600', enc(grey(700, 600, 2), 'PNG', optimize=True), 'png', 'grey PNG, downscale, landscape')
add('grey_517x1033', enc(grey(517, 1033, 3), 'PNG', optimize=True), 'png',
    'grey PNG, odd sizes, slight upscale, odd crop offset')
add('grey_64x64', enc(grey(64, 64, 4, noise=2), 'PNG'), 'png', 'grey PNG, 8x upscale')
add('grey_518x777', enc(grey(518, 777, 5), 'PNG', optimize=True), 'png',
    'grey PNG, short side already 518 (no horizontal pass, no resize at all on that axis)')
add('rgb_301x263', enc(rgb(301, 263, 7), 'PNG'), 'png', 'RGB PNG, odd sizes, upscale')

# 1-bit
bw = grey(120, 140, 8).point(lambda v: 255 if v > 120 else 0).convert('1')
add('bilevel_120x140', enc(bw, 'PNG'), 'png', '1-bit PNG (PIL mode 1)')

# grey + alpha: convert('RGB') drops the alpha, no compositing
g = grey(300, 340, 9)
alpha = Image.fromarray(u8(np.linspace(0, 255, 300 * 340).reshape(340, 300)), 'L')
add('greyalpha_300x340', enc(Image.merge('LA', [g, alpha]), 'PNG'), 'png', 'grey+alpha PNG (alpha dropped)')

# RGBA with fully transparent areas (colour kept under alpha 0)
c = rgb(320, 290, 10)
a = np.full((290, 320), 255, np.uint8)
a[:, :80] = 0
a[100:150, :] = 128
add('rgba_320x290', enc(Image.merge('RGBA', list(c.split()) + [Image.fromarray(a, 'L')]), 'PNG'), 'png',
    'RGBA PNG (alpha dropped, no compositing)')

# palette
p = rgb(280, 310, 11).quantize(colors=200, method=Image.MEDIANCUT)
add('palette_280x310', enc(p, 'PNG'), 'png', 'palette PNG')
add('palette_trns_280x310', enc(p, 'PNG', transparency=5), 'png', 'palette PNG with a transparent index')

# 16-bit grey: PIL opens it as mode I and convert('RGB') CLIPS every value above 255 to 255
a16 = np.clip(np.round(radiograph(150, 170, 12) * 257), 0, 65535).astype(np.uint16)
src16 = Image.fromarray(a16)  # mode I;16
msb = Image.fromarray((a16 >> 8).astype(np.uint8), 'L').convert('RGB')
lo, hi = int(a16.min()), int(a16.max())
mm = Image.fromarray(np.floor((a16.astype(np.float64) - lo) * 255.0 / (hi - lo) + 0.5).astype(np.uint8), 'L').convert('RGB')
add('grey16_150x170', enc(src16, 'PNG'), 'png', '16-bit grey PNG',
    options={'highBitDepth': 'pil'},
    expect={'msb': (msb, {'highBitDepth': 'msb'}), 'minmax': (mm, {'highBitDepth': 'minmax'})},
    note='expected = PIL (mode I, convert clips at 255); variants: high byte (our default) and min-max')

# 16-bit RGB: PIL keeps the high byte of every sample
a16c = np.stack([a16, (a16 * 0.9).astype(np.uint16), (a16 * 0.8 + 3000).astype(np.uint16)], axis=-1)
import zlib, struct  # a 16-bit RGB PNG written by hand (PIL cannot write one)
def png16rgb(arr):
    h, w, _ = arr.shape
    raw = b''.join(b'\x00' + arr[y].astype('>u2').tobytes() for y in range(h))
    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b''))
add('rgb16_150x170', png16rgb(a16c), 'png', '16-bit RGB PNG (PIL keeps the high byte)')

# --- lossy / other containers ---
add('grey_2000x1600', enc(grey(2000, 1600, 13), 'JPEG', quality=85), 'jpg',
    'grey JPEG, big downscale')
add('rgb_baseline_444_420x460', enc(rgb(420, 460, 14), 'JPEG', quality=92, subsampling=0), 'jpg',
    'RGB baseline JPEG 4:4:4')
add('rgb_progressive_420_450x500', enc(rgb(450, 500, 15), 'JPEG', quality=90, subsampling=2,
                                       progressive=True), 'jpg', 'RGB progressive JPEG 4:2:0')

# CMYK JPEG (PIL writes Adobe-inverted CMYK; convert('RGB') is PIL's naive formula, no ICC)
cm = np.asarray(rgb(360, 300, 16)).astype(np.float64)
k = 255 - cm.max(axis=-1)
cmyk = np.stack([255 - cm[..., 0] - k, 255 - cm[..., 1] - k, 255 - cm[..., 2] - k, k], axis=-1) * 0.9
add('cmyk_360x300', enc(Image.fromarray(u8(cmyk), 'CMYK'), 'JPEG', quality=92), 'jpg', 'CMYK JPEG')

# EXIF orientation (PIL's open does not apply it; our default does, like ImageOps.exif_transpose)
for orient, (w, h) in ((6, (560, 500)), (5, (230, 200))):
    im = rgb(w, h, 20 + orient)
    ex = Image.Exif()
    ex[0x0112] = orient
    data = enc(im, 'JPEG', quality=92, exif=ex.tobytes())
    add(f'exif{orient}_{w}x{h}', data, 'jpg', f'RGB JPEG with EXIF orientation {orient}',
        pil_loader=lambda i: ImageOps.exif_transpose(i).convert('RGB'),
        expect={'noorient': (Image.open(io.BytesIO(data)).convert('RGB'), {'autoOrient': False})},
        note='expected = exif_transpose then convert; variant noorient = the official pipeline (no transpose)')

# the other orientations: decoded pixels only (exif_transpose), small files
for orient in (2, 3, 4, 7, 8):
    ex = Image.Exif()
    ex[0x0112] = orient
    add(f'exif{orient}_small_70x50', enc(rgb(70, 50, 50 + orient), 'JPEG', quality=95, exif=ex.tobytes()), 'jpg',
        f'RGB JPEG with EXIF orientation {orient} (decode only)',
        pil_loader=lambda i: ImageOps.exif_transpose(i).convert('RGB'), crop=False)

# sources tagged with an ICC profile (Display P3), written once by sharp's withIccProfile('p3') (PIL cannot
# make one without a profile file): PIL ignores embedded profiles, so must we. Decoded pixels only.
for ext in ('png', 'jpg'):
    fn = os.path.join(OUT, 'icc_p3_301x263.' + ext)
    if os.path.exists(fn):
        with open(fn, 'rb') as f:
            add('icc_p3_301x263', f.read(), ext, f'{ext.upper()} with an embedded Display P3 ICC profile (decode only)',
                crop=False)
        manifest['images'][-1]['name'] += '_' + ext

add('webp_lossy_400x430', enc(rgb(400, 430, 30), 'WEBP', quality=90, method=4), 'webp', 'lossy WebP')
add('webp_lossless_rgba_300x320', enc(Image.merge('RGBA', list(rgb(300, 320, 31).split())
                                                  + [Image.new('L', (300, 320), 200)]), 'WEBP', lossless=True),
    'webp', 'lossless WebP with alpha')
add('tiff_lzw_rgb_250x270', enc(rgb(250, 270, 32), 'TIFF', compression='tiff_lzw'), 'tif', 'LZW TIFF RGB')
add('tiff_grey_raw_157x200', enc(grey(157, 200, 33), 'TIFF'), 'tif', 'uncompressed TIFF grey')
add('gif_290x310', enc(rgb(290, 310, 34).convert('P', palette=Image.ADAPTIVE, colors=256), 'GIF'), 'gif',
    'single-frame GIF')

# animated GIF (two frames): refused by default, firstFrame takes frame 0 like PIL's open
f0 = grey(200, 220, 35).convert('P')
f1 = grey(200, 220, 36).convert('P')
b = io.BytesIO()
f0.save(b, 'GIF', save_all=True, append_images=[f1], duration=100, loop=0)
add('animated_200x220', b.getvalue(), 'gif', 'animated GIF, 2 frames', options={'firstFrame': True})

# --- the resampler alone: PIL resize of small lossless images to many sizes ---
src = rgb(37, 53, 40, noise=4)
src.save(os.path.join(OUT, 'resample', 'src_37x53.png'))
cases = [(37, 53), (300, 429), (20, 30), (37, 80), (100, 53), (37, 10), (1, 1), (5, 200), (36, 52), (38, 54)]
src2 = grey(211, 97, 41, noise=4).convert('RGB')
src2.save(os.path.join(OUT, 'resample', 'src_211x97.png'))
cases2 = [(64, 29), (211, 40), (13, 97), (300, 138), (469, 97), (105, 48), (7, 3)]
for s, name, cs in ((src, 'src_37x53.png', cases), (src2, 'src_211x97.png', cases2)):
    for (w, h) in cs:
        out = f'resample/{os.path.splitext(name)[0]}_to_{w}x{h}.webp'
        s.resize((w, h), Image.BICUBIC).save(os.path.join(OUT, out), **LOSSLESS)
        manifest['resample'].append({'src': 'resample/' + name, 'width': w, 'height': h, 'expected': out})

# --- torch: normalization LUT and full-tensor summaries ---
if HAVE_TV:
    ramp = Image.fromarray(np.stack([np.arange(256, dtype=np.uint8)] * 3, axis=-1).reshape(1, 256, 3), 'RGB')
    lut = T.Normalize(mean=MEAN, std=STD)(T.ToTensor()(ramp)).numpy().reshape(3, 256).astype('<f4')
    lut.tofile(os.path.join(OUT, 'normalize-lut.bin'))
    tens = {}
    for name in ('rgb_600x700', 'grey_517x1033', 'grey_64x64', 'cmyk_360x300'):
        e = next(x for x in manifest['images'] if x['name'] == name)
        im = Image.open(os.path.join(OUT, e['file'])).convert('RGB')
        t = tv_tensor(im).numpy()
        assert t.shape == (3, SIZE, SIZE) and t.dtype == np.float32
        # the full tensor is the LUT applied to the crop
        crop = np.asarray(official_crop(im)).transpose(2, 0, 1)
        assert np.array_equal(t, lut[np.arange(3)[:, None, None], crop]), name + ': tensor != LUT(crop)'
        idx = [0, 1, 37, 100, 258, 259, 400, 517]
        tens[name] = {'sum': [float(t[c].astype(np.float64).sum()) for c in range(3)],
                      'sumsq': [float((t[c].astype(np.float64) ** 2).sum()) for c in range(3)],
                      'samples': [[c, y, x, float(t[c, y, x])] for c in range(3) for y in idx for x in idx]}
    with open(os.path.join(OUT, 'tensors.json'), 'w') as f:
        json.dump(tens, f, indent=1)

with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
    json.dump(manifest, f, indent=1)

total = 0
for dp, _, fs in os.walk(OUT):
    for fn in fs:
        total += os.path.getsize(os.path.join(dp, fn))
print(f'total {total / 1e6:.2f} MB')
