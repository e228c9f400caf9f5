"""PIL's pixels against mbls-data's for the same JPEG files (bench/compare_jpeg.sh).

    python pil_jpeg_diff.py list <root> <list file>        # writes the sorted list of *.jpg
    python pil_jpeg_diff.py compare <list file> <raw file> # raw: jpeg_dump's output

compare decodes every listed file with PIL (Image.open(...).convert("RGB"), as torchvision's
ImageFolder loader does) and prints, over all pixels: the mean absolute difference in levels,
the mean signed difference per channel (mbls - PIL), the largest difference, the share of
identical values, and PIL's decoding time per image (one thread).
"""
import io
import pathlib
import sys
import time

import numpy as np
import PIL
from PIL import Image, features


def write_list(root, out):
    files = sorted(str(p) for p in pathlib.Path(root).rglob("*.jpg"))
    pathlib.Path(out).write_text("\n".join(files) + "\n")
    print(f"{len(files)} files listed")


def compare(listfile, rawfile):
    paths = [l for l in pathlib.Path(listfile).read_text().splitlines() if l]
    blobs = [pathlib.Path(p).read_bytes() for p in paths]
    start = time.perf_counter()
    arrays = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs]
    seconds = time.perf_counter() - start
    ours = np.fromfile(rawfile, dtype=np.uint8)
    theirs = np.concatenate([a.reshape(-1) for a in arrays])
    if ours.size != theirs.size:
        sys.exit(f"size mismatch: mbls wrote {ours.size} values, PIL decoded {theirs.size}")
    d = ours.astype(np.int16) - theirs.astype(np.int16)
    per_channel = d.reshape(-1, 3).mean(axis=0)
    print(f"Pillow {PIL.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}; "
          f"{len(paths)} images")
    print(f"mean_abs_diff={np.abs(d).mean():.5f} levels  max_abs_diff={np.abs(d).max()}  "
          f"identical={np.mean(d == 0):.6f}")
    print(f"bias R={per_channel[0]:+.5f} G={per_channel[1]:+.5f} B={per_channel[2]:+.5f} levels")
    ends = np.cumsum([a.size for a in arrays])
    differing = sum(int(np.any(d[e - a.size:e] != 0)) for a, e in zip(arrays, ends))
    print(f"images_differing={differing} of {len(arrays)}")
    print(f"PIL us_per_image={seconds * 1e6 / len(paths):.2f}")


if __name__ == "__main__":
    if sys.argv[1] == "list":
        write_list(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
